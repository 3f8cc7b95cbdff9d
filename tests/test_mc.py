"""Monte Carlo: Boltzmann sampling, the penalty method's removal of noise bias, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from hqc_qiskit.mc import KB_EV, Measurement, acceptance_probability, run_chain

T = 1.0 / KB_EV     # beta = 1 / eV


def _harmonic(noise, seed):
    """E = x^2 / 2 (eV) measured with Gaussian noise of standard error noise(x)."""
    rng = np.random.default_rng(seed)

    def measure(x, _chain_rng):
        s = noise(x)
        return Measurement(0.5 * float(np.sum(x**2)) + (rng.normal(0, s) if s else 0.0), s)

    return measure


def _propose(x, rng):
    return x + rng.normal(0, 0.8, size=x.shape)


def _mean_square(noise, acceptance, remeasure, steps=40000, seed=0):
    xs = []
    run_chain(_harmonic(noise, seed + 1), np.zeros((1, 1)), T, steps, _propose, acceptance, seed,
              on_step=lambda s, _a: xs.append(s.positions[0, 0]), remeasure_current=remeasure)
    return float(np.mean(np.square(xs[2000:])))


def test_exact_energies_sample_boltzmann():
    """1-D harmonic well at beta = 1/eV: <x^2> = 1/beta = 1."""
    assert _mean_square(lambda x: 0.0, "plain", False) == pytest.approx(1.0, rel=0.06)


def test_penalty_removes_the_bias_of_fresh_noisy_energies():
    noise = lambda x: 1.0  # noqa: E731
    assert _mean_square(noise, "plain", True) > 1.25                          # broadened
    assert _mean_square(noise, "penalty", True) == pytest.approx(1.0, rel=0.08)


def test_penalty_removes_the_bias_when_the_current_energy_is_reused():
    """State-dependent noise (as with shots): plain Metropolis on reused estimates is biased; penalty is not."""
    noise = lambda x: 0.6 * float(np.sqrt(1.0 + np.sum(x**2)))  # noqa: E731
    assert _mean_square(noise, "plain", False) > 1.25
    assert _mean_square(noise, "penalty", False) == pytest.approx(1.0, rel=0.10)


def test_acceptance_rules():
    assert acceptance_probability(-1.0, 1.0, "plain") == 1.0
    assert acceptance_probability(1.0, 1.0, "penalty") == pytest.approx(np.exp(-1.0))
    assert acceptance_probability(1.0, 1.0, "penalty", 1.0, 0.0) == pytest.approx(np.exp(-1.5))
    assert acceptance_probability(1.0, 1.0, "penalty", 1.0, 1.0, reused=True) == pytest.approx(np.exp(-1.0))


def test_resume_after_kill_continues_identically(tmp_path):
    measure = _harmonic(lambda x: 0.0, 0)
    full = run_chain(measure, np.zeros((2, 3)), 2000.0, 60, _propose, "penalty", seed=3)
    ckpt = tmp_path / "mc.json"
    run_chain(measure, np.zeros((2, 3)), 2000.0, 30, _propose, "penalty", seed=3, checkpoint=ckpt, checkpoint_every=10)
    resumed = run_chain(measure, np.zeros((2, 3)), 2000.0, 60, _propose, "penalty", seed=3, checkpoint=ckpt)
    np.testing.assert_array_equal(resumed.positions, full.positions)
    assert resumed.accepted == full.accepted and resumed.step == 60
