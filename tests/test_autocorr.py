"""Error bars of correlated means (hqc_qiskit.autocorr) against AR(1) processes, whose tau is known exactly."""

import numpy as np
import pytest

from hqc_qiskit.autocorr import MIN_TAUS_FOR_TRUST, averages, series_stats
from hqc_qiskit.errors import HQCError


def ar1(phi: float, n: int, rng: np.random.Generator, chains: int = 1) -> np.ndarray:
    """x_t = phi x_{t-1} + e_t, stationary start; integrated autocorrelation time (1 + phi) / (1 - phi). (chains, n)"""
    x = np.empty((chains, n))
    x[:, 0] = rng.normal(size=chains) / np.sqrt(1 - phi ** 2)
    e = rng.normal(size=(chains, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def test_tau_of_an_ar1_process_and_the_stride_in_steps():
    phi = 0.8   # tau = 9 samples
    x = ar1(phi, 200_000, np.random.default_rng(0))[0]
    s = series_stats(x, stride_steps=10)
    assert s.tau_steps / 10 == pytest.approx((1 + phi) / (1 - phi), rel=0.1)
    assert s.n_effective == pytest.approx(len(x) / 9, rel=0.1) and s.trusted
    assert s.stderr == pytest.approx(x.std() * np.sqrt(9 / len(x)), rel=0.1)


def test_stderr_matches_the_spread_of_independent_chains():
    """The error bar of one chain predicts how much the means of independent chains scatter (naive sigma/sqrt(N)
    would be 3x too small here)."""
    rng = np.random.default_rng(1)
    chains = ar1(0.8, 2000, rng, chains=400)
    stats = [series_stats(c) for c in chains]
    spread = np.std([s.mean for s in stats])
    predicted = np.sqrt(np.mean([s.stderr ** 2 for s in stats]))
    assert predicted == pytest.approx(spread, rel=0.15)
    naive = np.mean([c.std() / np.sqrt(len(c)) for c in chains])
    assert naive < 0.5 * spread


def test_pooled_chains_give_tau_and_count_every_sample():
    chains = ar1(0.8, 5000, np.random.default_rng(4), chains=8)
    s = series_stats(chains, stride_steps=2)
    assert s.tau_steps / 2 == pytest.approx(9.0, rel=0.1)
    assert s.n_samples == chains.size and s.mean == pytest.approx(chains.mean())
    assert s.stderr == pytest.approx(chains.std() * np.sqrt(s.tau_steps / 2 / chains.size))


def test_white_noise_has_tau_one_and_short_chains_are_flagged():
    x = np.random.default_rng(2).normal(size=5000)
    s = series_stats(x)
    assert s.tau_steps == pytest.approx(1.0, abs=0.2) and s.trusted
    short = series_stats(ar1(0.95, 400, np.random.default_rng(3))[0])
    assert short.n_effective < MIN_TAUS_FOR_TRUST and not short.trusted


def test_constant_and_bad_series():
    s = series_stats(np.full(10, -5.2))
    assert s.mean == pytest.approx(-5.2) and (s.stderr, s.tau_steps) == (0.0, 1.0)
    with pytest.raises(HQCError, match="NaN or infinite"):
        series_stats([1.0, np.nan, 2.0])
    with pytest.raises(HQCError, match="at least 2 samples"):
        series_stats([1.0])
    with pytest.raises(HQCError, match="stride"):
        series_stats([1.0, 2.0], stride_steps=0)
    out = averages({"ok": [1.0, 2.0, 3.0], "unstable": [1.0, np.inf], "empty": []}, 5)
    assert out["ok"]["mean"] == 2.0 and out["ok"]["tau_steps"] >= 5 and out["unstable"] is None and out["empty"] is None
