"""Metropolis Monte Carlo with noisy energies: plain acceptance (the paper) or the penalty method.

Penalty method (Ceperley and Dewing, J. Chem. Phys. 110, 9812 (1999)): when both energies are
measured afresh at every step, dE is Gaussian with variance sigma^2 = s_new^2 + s_old^2, and
accepting with min(1, exp(-beta dE - beta^2 sigma^2 / 2)) satisfies detailed balance on average over
the noise. Plain Metropolis with fresh noisy energies samples a broadened, biased distribution.

When the current state's estimate is *reused* (the default: half the measurements), the chain
runs on (x, noise) pairs; plain acceptance then samples exp(-beta E(x) + beta^2 s(x)^2 / 2), biased
wherever the standard error s depends on x, and the sum-of-variances penalty over-corrects. The
exact rule for that case is exp(-beta dE - beta^2 (s_new^2 - s_old^2) / 2), which is what
``penalty`` uses when the current energy is reused (derivation in docs/simulation.md). On those
pairs the kept estimate of a state is distributed N(E(x) - beta s(x)^2, s(x)^2) under either rule: it
was kept because it came out low, so averaging it underestimates <E> by beta <s^2>;
``reused_energy_unbiased`` adds that back. When the current state is re-measured, the fresh estimate taken
at the start of a step, before anything is decided on it, is unbiased for the state the chain is in
(``ChainState.fresh_energy``); the estimates kept by the acceptance are not.

Hand-written because it is this project's science; ASE has no Monte Carlo driver with noisy energies.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .checkpoint import atomic_write_json
from .errors import HQCError

KB_EV = 8.617333262e-5   # Boltzmann constant, eV/K
ACCEPTANCES = ("plain", "penalty")


def acceptance_probability(d_energy: float, beta: float, rule: str, s_new: float = 0.0, s_old: float = 0.0,
                           reused: bool = False, d_log_weight: float = 0.0) -> float:
    """Metropolis acceptance for an estimated dE (eV) with standard errors s_new, s_old (eV) of the two energies.

    plain: min(1, exp(-beta dE + dw)). penalty: min(1, exp(-beta dE + dw - beta^2 v / 2)) with v = s_new^2 + s_old^2
    when both energies are fresh, v = s_new^2 - s_old^2 when the current one is reused. ``d_log_weight`` (dw) is the
    change of the known, noise-free part of the log target density (in NPT: -beta P dV + (N + 1) dln V); it shifts
    the mean of the noisy exponent and leaves the penalty's argument unchanged."""
    if rule == "plain":
        exponent = -beta * d_energy + d_log_weight
    elif rule == "penalty":
        v = s_new**2 - s_old**2 if reused else s_new**2 + s_old**2
        exponent = -beta * d_energy + d_log_weight - 0.5 * beta**2 * v
    else:
        raise HQCError(f"unknown acceptance {rule!r}; choose one of {ACCEPTANCES}")
    return 1.0 if exponent >= 0 else math.exp(exponent)


def noise_acceptance_ceiling(beta_sigma: float, rule: str, reused: bool) -> float:
    """Acceptance ratio of a move that does not change the energy, when each energy is estimated with standard
    error s (``beta_sigma`` = s / k_B T): the most any step size can reach. With the current estimate reused (either
    rule; s the same for both states) the kept estimate lies beta s^2 low, so the exponent is -Y with
    Y ~ N(a^2, 2 a^2), a = beta s; with both fresh, penalty gives the same Y and plain Y ~ N(0, 2 a^2).
    E[min(1, e^-Y)] for Y ~ N(mu, v) is Phi(-mu / sqrt v) + exp(-mu + v / 2) Phi((mu - v) / sqrt v); 1 for exact
    energies, 2 Phi(-a / sqrt 2) in the first two cases (0.66 at a = 0.63)."""
    a = abs(beta_sigma)
    if a == 0:
        return 1.0
    mu, sd = (0.0 if rule == "plain" and not reused else a * a), math.sqrt(2.0) * a

    def phi(z: float) -> float:
        return 0.5 * math.erfc(-z / math.sqrt(2.0))

    return phi(-mu / sd) + math.exp(-mu + sd * sd / 2) * phi((mu - sd * sd) / sd)


@dataclass
class ChainState:
    """Everything a chain needs to continue exactly: the configuration (positions (N, 3) Å; with a variable cell
    (N + 3, 3), the cell's rows last, see :func:`split_configuration`), energy and its s.e. (eV), RNG."""

    step: int
    positions: np.ndarray
    energy: float
    sigma: float
    accepted: int = 0
    shots: int = 0
    qpu_seconds: float = 0.0
    rng_state: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)    # the driver's own resumable state (e.g. the step size)
    fresh_energy: float = math.nan   # eV, with remeasure_current: this step's new estimate of the state it began in
    fresh_sigma: float = math.nan    # eV, its standard error

    def to_json(self) -> dict:
        return {"step": self.step, "positions": self.positions.tolist(), "energy": self.energy, "sigma": self.sigma,
                "accepted": self.accepted, "shots": self.shots, "qpu_seconds": self.qpu_seconds,
                "rng_state": self.rng_state, "extra": self.extra}

    @classmethod
    def from_json(cls, raw: dict) -> "ChainState":
        return cls(raw["step"], np.asarray(raw["positions"], float), raw["energy"], raw["sigma"], raw["accepted"],
                   raw["shots"], raw["qpu_seconds"], raw["rng_state"], raw.get("extra", {}))


@dataclass
class Measurement:
    energy: float        # eV
    sigma: float         # eV, standard error of the estimate (0 for exact)
    shots: int = 0
    qpu_seconds: float = 0.0


def reused_energy_unbiased(energy: float, sigma: float, temperature: float) -> float:
    """An unbiased estimate (eV) of the energy of the state whose reused estimate is ``energy`` +- ``sigma`` (eV)
    in a chain at ``temperature`` (K): energy + sigma^2 / (k_B T) (module docstring). Averaged over a chain it gives
    <E>, where the kept estimates themselves average beta <s^2> too low."""
    return energy + sigma**2 / (KB_EV * temperature)


def displace(positions: np.ndarray, rng: np.random.Generator, n_moved: int, delta: float) -> np.ndarray:
    """Move ``n_moved`` distinct random atoms by N(0, delta^2) per Cartesian component (Å)."""
    new = positions.copy()
    idx = rng.choice(len(positions), size=min(n_moved, len(positions)), replace=False)
    new[idx] += rng.normal(0.0, delta, size=(len(idx), 3))
    return new


# Isobaric (NPT) chains sample positions and cell together. Their configuration is one (N + 3, 3) array, the
# positions (Å) with the cell's three rows (Å) below, so that accepting or rejecting a move keeps or restores both.
def join_configuration(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """positions (N, 3) and cell (3, 3), Å -> the (N + 3, 3) configuration of an isobaric chain."""
    return np.vstack([np.asarray(positions, float), np.asarray(cell, float)])


def split_configuration(config: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (N + 3, 3) configuration of an isobaric chain -> positions (N, 3), cell (3, 3), Å."""
    return config[:-3], config[-3:]


def configuration_volume(config: np.ndarray) -> float:
    """Volume (Å^3) of the cell of an isobaric chain's (N + 3, 3) configuration."""
    return abs(float(np.linalg.det(split_configuration(config)[1])))


def scale_volume(config: np.ndarray, rng: np.random.Generator, max_dlnv: float) -> np.ndarray:
    """Isotropic volume move: ln V changes by U(-max_dlnv, max_dlnv); the cell and all positions scale by
    (V'/V)^(1/3), so fractional coordinates are kept (the move is symmetric in (fractional coordinates, ln V))."""
    return config * math.exp(rng.uniform(-max_dlnv, max_dlnv) / 3.0)


def npt_log_weight(pressure_ev_a3: float, beta: float) -> Callable[[np.ndarray], float]:
    """The noise-free part of the isobaric log target density of a configuration (N + 3, 3) in the coordinates the
    moves are symmetric in (fractional coordinates, ln V): -beta P V + (N + 1) ln V (Frenkel and Smit,
    Understanding Molecular Simulation, ch. 5.4). ``pressure_ev_a3`` in eV/Å^3, ``beta`` in 1/eV."""
    def log_weight(config: np.ndarray) -> float:
        volume, n_atoms = configuration_volume(config), len(config) - 3
        return -beta * pressure_ev_a3 * volume + (n_atoms + 1) * math.log(volume)

    return log_weight


def run_chain(
    measure: Callable[[np.ndarray, np.random.Generator], Measurement],
    positions: np.ndarray,
    temperature: float,
    n_steps: int,
    propose: Callable[[np.ndarray, np.random.Generator], np.ndarray],
    acceptance: str = "penalty",
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    on_step: Callable[[ChainState, bool], None] | None = None,
    remeasure_current: bool = False,
    on_start: Callable[[ChainState], None] | None = None,
    on_checkpoint: Callable[[ChainState], None] | None = None,
    log_weight: Callable[[np.ndarray], float] | None = None,
) -> ChainState:
    """Metropolis chain at ``temperature`` (K). Resumes from ``checkpoint`` if it exists (same seed -> same chain).

    The chain samples exp(-E(x) / k_B T + log_weight(x)) with symmetric proposals ``propose(x, rng)``; without
    ``log_weight`` the canonical ensemble, with :func:`npt_log_weight` the isobaric one.

    ``measure(positions, rng)`` draws its shot noise from the chain's generator, so a resumed chain is
    identical to an uninterrupted one. The current state's energy is reused between steps unless
    ``remeasure_current``; then ``state.fresh_energy`` / ``fresh_sigma`` hold the step's new estimate of the state
    it began in (unbiased, as drawn before the acceptance). ``on_start`` sees the first (or restored) state;
    ``on_step`` every step, before the checkpoint is written (it may update ``state.extra``); ``on_checkpoint``
    just before each checkpoint write (flush logs there)."""
    if acceptance not in ACCEPTANCES:
        raise HQCError(f"unknown acceptance {acceptance!r}; choose one of {ACCEPTANCES}")
    beta = 1.0 / (KB_EV * temperature)
    rng = np.random.default_rng(seed)
    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.exists():
        try:
            state = ChainState.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError) as exc:
            raise HQCError(f"{path}: unreadable MC checkpoint ({exc}); move it away to start afresh") from None
        rng.bit_generator.state = state.rng_state
    else:
        first = measure(positions, rng)
        state = ChainState(0, np.asarray(positions, float).copy(), first.energy, first.sigma,
                           shots=first.shots, qpu_seconds=first.qpu_seconds)
    if on_start is not None:
        on_start(state)
    while state.step < n_steps:
        if remeasure_current:
            again = measure(state.positions, rng)
            state.energy, state.sigma = again.energy, again.sigma
            state.fresh_energy, state.fresh_sigma = again.energy, again.sigma
            state.shots += again.shots
            state.qpu_seconds += again.qpu_seconds
        trial = propose(state.positions, rng)
        new = measure(trial, rng)
        state.shots += new.shots
        state.qpu_seconds += new.qpu_seconds
        d_log_weight = 0.0 if log_weight is None else log_weight(trial) - log_weight(state.positions)
        p = acceptance_probability(new.energy - state.energy, beta, acceptance, new.sigma, state.sigma,
                                   reused=not remeasure_current, d_log_weight=d_log_weight)
        accept = rng.random() < p
        if accept:
            state.positions, state.energy, state.sigma = trial, new.energy, new.sigma
            state.accepted += 1
        state.step += 1
        if on_step is not None:
            on_step(state, accept)
        if path is not None and (state.step % checkpoint_every == 0 or state.step == n_steps):
            state.rng_state = rng.bit_generator.state
            if on_checkpoint is not None:
                on_checkpoint(state)
            atomic_write_json(state.to_json(), path)
    state.rng_state = rng.bit_generator.state
    return state

