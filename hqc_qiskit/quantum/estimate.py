"""Shot-based energies of a trained HQC model: all atoms x layers readout circuits as one job.

E = sum_i E0[species_i] + sum_l sum_i (b_l + c_l . <Z>_il), with c_l, b_l the readout's decode layer.
Each circuit k measured with S_k shots gives sample means Zbar_k with per-shot covariance C_k, so

    E_hat = E_classical + sum_k c_k . Zbar_k,      Var(E_hat) = sum_k c_k^T C_k c_k / S_k.

Shot allocation under a total budget S_tot: ``uniform`` (S_k = S_tot / K, the paper) or ``optimal``
(S_k proportional to sqrt(v_k), v_k = c_k^T C_k c_k from the exact noiseless engine as a prior),
which minimizes Var(E_hat) for the budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .backends import Backend, CircuitBatch, exact_distributions, stats_from_distribution
from .circuit_inputs import structure_graph

ALLOCATIONS = ("uniform", "optimal")


@dataclass
class ReadoutProblem:
    """A structure's readout circuits and how their <Z> become an energy (eV)."""

    batch: CircuitBatch
    coeffs: np.ndarray          # (K, n) decode weights of each circuit's layer
    constant: float             # eV: reference energies + decode biases (no shot noise)
    exact_energy: float         # eV: the model's exact (training-engine) energy
    n_atoms: int


@dataclass
class EnergyEstimate:
    energy: float               # eV
    stderr: float               # eV (shot noise only; 0 for exact)
    exact_energy: float         # eV, exact engine, for reference
    n_atoms: int
    circuits: int
    shots: int
    backend: str
    allocation: str
    qpu_seconds: float = 0.0

    @property
    def energy_per_atom(self) -> float:
        return self.energy / self.n_atoms

    def as_dict(self) -> dict:
        return asdict(self)


def require_quantum_readouts(model) -> list:
    """The model's readouts, all quantum; ConfigError otherwise (classical readouts have no circuits to measure)."""
    from ..model.readouts import QuantumReadout

    readouts = list(model.readouts)
    if not all(isinstance(r, QuantumReadout) for r in readouts):
        raise ConfigError("shot-based energies need a model with quantum readouts (readout.kind: quantum)")
    return readouts


def readout_problem(model, atoms) -> ReadoutProblem:
    """Run the classical part of ``model`` on ``atoms`` and collect every readout circuit's inputs."""
    readouts = require_quantum_readouts(model)
    captured: list[torch.Tensor] = []
    hooks = [r.circuit.register_forward_hook(lambda _m, inp, _out: captured.append(inp[0].detach()))
             for r in readouts]
    try:
        with torch.no_grad():
            out = model(structure_graph(model, atoms), compute_forces=False)
    finally:
        for h in hooks:
            h.remove()
    first = readouts[0].circuit
    groups, coeffs, constant = [], [], float(out["node_energy"].sum() - out["layer_energy"].sum())
    for readout, x in zip(readouts, captured):
        w = readout.circuit.weight.detach().double().cpu().numpy().reshape(-1)
        groups.append((x.double().cpu().numpy(), w))
        c = readout.decode.weight.detach().double().cpu().numpy().reshape(-1)
        coeffs.append(np.broadcast_to(c, (len(x), c.size)))
        constant += float(readout.decode.bias.detach().double()) * len(x)
    batch = CircuitBatch(first.name, first.n_qubits, first.n_layers, groups)
    return ReadoutProblem(batch, np.concatenate(coeffs), constant, float(out["energy"][0]), len(atoms))


def per_shot_variance(problem: ReadoutProblem) -> np.ndarray:
    """v_k = c_k^T C_k c_k (eV^2) of every circuit under the exact noiseless engine (the allocation prior)."""
    return prior_variance(problem.batch, problem.coeffs)


def prior_variance(batch: CircuitBatch, coeffs: np.ndarray) -> np.ndarray:
    """v_k = c_k^T C_k c_k (eV^2) of each circuit of ``batch`` decoded with ``coeffs`` (K, n), C_k from the
    exact noiseless engine."""
    _, cov = stats_from_distribution(exact_distributions(batch), batch.n_qubits)
    return _decoded_per_shot(coeffs, cov)


def _decoded_per_shot(coeffs: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return np.einsum("kq,kqr,kr->k", coeffs, cov, coeffs)


MIN_SHOTS = 2   # per circuit: each circuit's standard error comes from its own sample covariance


def allocate_shots(variance: np.ndarray, total: int, allocation: str = "uniform", min_shots: int = 16) -> np.ndarray:
    """Integer shots per circuit summing to ``total``: uniform, or proportional to sqrt(variance) (optimal).
    Every circuit gets at least ``min_shots``, or the average when that is smaller (down to ``MIN_SHOTS``)."""
    k = len(variance)
    if allocation not in ALLOCATIONS:
        raise ConfigError(f"unknown shot allocation {allocation!r}; choose one of {ALLOCATIONS}")
    if total < k * MIN_SHOTS:
        raise ConfigError(f"{total} shots is fewer than {MIN_SHOTS} per circuit for {k} circuits")
    min_shots = min(min_shots, total // k)
    if allocation == "uniform":
        weights = np.ones(k)
    else:
        weights = np.sqrt(np.clip(variance, 0.0, None))
        if weights.sum() == 0:
            weights = np.ones(k)
    spare = total - k * min_shots
    raw = spare * weights / weights.sum()
    shots = np.floor(raw).astype(np.int64)
    shots[np.argsort(raw - shots)[::-1][: spare - shots.sum()]] += 1   # largest remainders
    return shots + min_shots


def predicted_stderr(variance: np.ndarray, shots: np.ndarray) -> float:
    """Standard error (eV) of the energy for per-shot variances and shots per circuit."""
    return float(np.sqrt(np.sum(variance / shots)))


def shots_per_circuit(problem: ReadoutProblem, shots: int | None, allocation: str = "uniform") -> np.ndarray:
    """Shots of each circuit (K,) for ``shots`` per circuit on average (total shots x K); inf if ``shots`` is None."""
    k = len(problem.batch)
    if shots is None:
        return np.full(k, np.inf)
    if not shots >= MIN_SHOTS:
        raise ConfigError(f"shots must be at least {MIN_SHOTS} per circuit (each circuit's standard error comes from "
                          f"its own sample covariance), got {shots}")
    variance = per_shot_variance(problem) if allocation == "optimal" else np.ones(k)
    return allocate_shots(variance, int(shots) * k, allocation)


def decoded_variance(coeffs: np.ndarray, cov: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """Variance (K,) of each circuit's decoded sample mean c_k . Zbar_k: c_k^T C_k c_k / S_k; 0 where exact."""
    var = _decoded_per_shot(coeffs, cov)
    finite = np.isfinite(shots)
    return np.where(finite, var / np.where(finite, shots, 1.0), 0.0)


def estimate_energy(model, atoms, backend: Backend, shots: int | None = 50000, allocation: str = "uniform",
                    rng: np.random.Generator | None = None, problem: ReadoutProblem | None = None) -> EnergyEstimate:
    """Energy (eV) of ``atoms`` and its shot-noise standard error, measured on ``backend``.

    ``shots`` is per circuit on average: the total budget is shots x circuits for both allocations (times
    the number of folds with ZNE, whose shots "optimal" also splits optimally, ``zne_shot_split``).
    ``shots=None`` (or a backend without shots) gives expectation values: noise, no shot noise."""
    problem = problem or readout_problem(model, atoms)
    k = len(problem.batch)
    per_circuit = shots_per_circuit(problem, shots if backend.shot_based else None, allocation)
    samples = backend.for_allocation(allocation).run(problem.batch, per_circuit, rng)
    energy = problem.constant + float(np.sum(problem.coeffs * samples.mean))
    stderr = float(np.sqrt(np.sum(decoded_variance(problem.coeffs, samples.cov, samples.shots))))
    finite = np.isfinite(samples.shots)
    executed = samples.info.get("executed_shots", np.sum(per_circuit))   # with ZNE: every fold's shots
    return EnergyEstimate(energy, stderr, problem.exact_energy, problem.n_atoms, k,
                          int(executed) if finite.all() else 0, backend.name, allocation, samples.qpu_seconds)
