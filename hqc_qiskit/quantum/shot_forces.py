"""Shot-based forces and stress of a trained HQC model: the parameter-shift rule for the circuits,
exact autograd for the classical part that feeds them.

Input q of readout circuit k enters through a single RY(x_kq) on qubit q, so every <Z_p> is a
first-degree trigonometric polynomial in x_kq and

    d<Z_p>/dx_kq = ( <Z_p>(x_k + pi/2 e_q) - <Z_p>(x_k - pi/2 e_q) ) / 2

holds exactly for the expectation values; measured with shots both terms are unbiased, and under gate
and readout noise that does not depend on x it is the exact derivative of the noisy expectation. (With
ZNE the rule is applied to the extrapolated values; folding repeats gates, so there it is exact only in
the zero-noise limit that ZNE extrapolates to.)

With c_k the decode weights of circuit k's readout, g_kq = c_k . d<Z>/dx_kq (eV/rad) is measured from
the 2n shifted copies of each circuit, and the circuit inputs x(r, eps) are differentiated exactly:

    F = -J_r^T g  (eV/Å),    sigma = J_eps^T g / V  (eV/Å^3),    J = dx/d(r, eps)  (forward-mode autograd).

A model with a fixed pair repulsion (``model.pair_repulsion``) adds that term's exact gradient to both: it is
classical and measured by no circuit.

Every circuit is measured with its own shots, so Var(F_a) = sum_kq J_kqa^2 Var(g_kq) with
Var(g_kq) = (v_kq+ / S_kq+ + v_kq- / S_kq-) / 4 and v = c^T C c per shot: the standard errors are exact
given J (a few seconds of autograd on a 64-atom structure; ``uncertainty=False`` skips it). Without J the
mean variance of a force component is still estimated, without bias, from one more backward pass: the
mean square of J_r^T z with z_kq ~ N(0, Var(g_kq)) (a Hutchinson-type probe; what MD's noise compensation
needs, and on hardware the only measure of shot noise apart from device error).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np

from ..errors import ConfigError
from .backends import Backend, CircuitBatch
from .circuit_inputs import input_jacobian, input_vjps, pair_gradient, structure_graph
from .estimate import (ALLOCATIONS, EnergyEstimate, ReadoutProblem, allocate_shots, decoded_variance, prior_variance,
                       readout_problem, shots_per_circuit)

SHIFT = np.pi / 2   # rad: the shift of the parameter-shift rule for a Pauli rotation


@dataclass(kw_only=True)
class ForceEstimate(EnergyEstimate):
    """An :class:`EnergyEstimate` (energy and its standard error, eV; circuits and shots of the whole batch) with
    the forces (N, 3) eV/Å and optionally the stress (3, 3) eV/Å^3 (ASE's sign), each with its standard error
    (shot noise only; 0 for exact; None when not computed), ``force_noise_var`` the mean shot-noise variance
    of a force component (eV/Å)^2 (exact with the standard errors, else a one-probe unbiased estimate), and
    the exact engine's values for reference."""

    forces: np.ndarray
    forces_stderr: np.ndarray | None
    force_noise_var: float
    stress: np.ndarray | None
    stress_stderr: np.ndarray | None
    exact_forces: np.ndarray
    exact_stress: np.ndarray | None

    def as_dict(self) -> dict:
        return {f.name: (v.tolist() if isinstance(v := getattr(self, f.name), np.ndarray) else v) for f in fields(self)}


def shifted_inputs(x: np.ndarray) -> np.ndarray:
    """Inputs (m, n) rad -> the (m * 2n, n) shifted copies, ordered [circuit][input q][+pi/2, -pi/2]."""
    m, n = x.shape
    shifts = np.stack([SHIFT * np.eye(n), -SHIFT * np.eye(n)], axis=1)          # (n, 2, n)
    return (x[:, None, None, :] + shifts[None]).reshape(m * 2 * n, n)


def shifted_batch(batch: CircuitBatch) -> CircuitBatch:
    """Every circuit of ``batch`` with each input shifted by +-pi/2 (same weights): 2n circuits per circuit."""
    groups = [(shifted_inputs(np.asarray(x, float)), w) for x, w in batch.groups]
    return CircuitBatch(batch.ansatz, batch.n_qubits, batch.n_layers, groups)


def _exact_reference(model, atoms, stress: bool) -> dict:
    out = model(structure_graph(model, atoms), compute_forces=True, compute_stress=stress)
    ref = {"forces": out["forces"].detach().double().cpu().numpy()}
    ref["stress"] = out["stress"][0].detach().double().cpu().numpy() if stress else None
    return ref


@dataclass
class ForceProblem:
    """What a shot-based force measurement of one structure runs: the energy problem (K circuits), their K * 2n
    shifted copies, the input Jacobian (K * n, 3N [+ 9]) when standard errors are wanted, and the exact gradient
    (3N [+ 9],) of the classical pair repulsion (zeros without one)."""

    energy: ReadoutProblem
    shifted: CircuitBatch
    jacobian: np.ndarray | None
    stress: bool
    pair_gradient: np.ndarray

    @property
    def base_circuits(self) -> int:
        return len(self.energy.batch)

    @functools.cached_property
    def combined(self) -> CircuitBatch:
        """The K energy circuits followed by their shifted copies: the one batch that is run."""
        b = self.energy.batch
        return CircuitBatch(b.ansatz, b.n_qubits, b.n_layers, b.groups + self.shifted.groups)

    @property
    def shift_coeffs(self) -> np.ndarray:
        """Each shifted copy's decode weights (2nK, n): its circuit's, repeated."""
        return np.repeat(self.energy.coeffs, 2 * self.energy.batch.n_qubits, axis=0)


def force_problem(model, atoms, stress: bool = False, uncertainty: bool = True) -> ForceProblem:
    """The circuits (and, with ``uncertainty``, the Jacobian) of a shot-based energy + forces [+ stress]."""
    if stress and not atoms.pbc.all():
        raise ConfigError("stress needs a periodic structure (pbc=True with a cell)")
    problem = readout_problem(model, atoms)
    jac = input_jacobian(model, atoms, stress) if uncertainty else None
    return ForceProblem(problem, shifted_batch(problem.batch), jac, stress, pair_gradient(model, atoms, stress))


def force_shots(fp: ForceProblem, shots: int | None, allocation: str = "uniform") -> np.ndarray:
    """Shots for each circuit of ``fp.combined`` (inf: exact). ``optimal`` splits the energy circuits' share
    (shots x K) to minimize Var(E) and the shifted circuits' share (shots x 2nK) to minimize sum_a Var(F_a),
    with the exact engine's variances (and J) as the prior; without J the shifted circuits are weighed by
    their variances alone."""
    if allocation not in ALLOCATIONS:
        raise ConfigError(f"unknown shot allocation {allocation!r}; choose one of {ALLOCATIONS}")
    if shots is None:
        return np.full(len(fp.combined), np.inf)
    n_shifted = len(fp.shifted)
    weight = np.ones(n_shifted)
    if allocation == "optimal":
        weight = prior_variance(fp.shifted, fp.shift_coeffs)                             # v per shot
        if fp.jacobian is not None:                                                  # times sum_a J_kqa^2 / 4
            n_pos = fp.jacobian.shape[1] - (9 if fp.stress else 0)
            weight = weight * np.repeat((fp.jacobian[:, :n_pos] ** 2).sum(axis=1), 2) / 4
    return np.concatenate([shots_per_circuit(fp.energy, shots, allocation),
                           allocate_shots(weight, int(shots) * n_shifted, allocation)])


def estimate_forces(model, atoms, backend: Backend, shots: int | None = 50000, allocation: str = "uniform",
                    rng: np.random.Generator | None = None, stress: bool = False,
                    uncertainty: bool = True, problem: ForceProblem | None = None) -> ForceEstimate:
    """Energy, forces (and with ``stress`` the stress) of ``atoms`` measured on ``backend``, with standard errors.

    The K energy circuits and their K * 2n shifted copies go out as one batch; ``shots`` is per circuit on
    average over all of them (``None`` or a backend without shots: expectation values); ``allocation`` as in
    :func:`force_shots`. ``uncertainty=False`` skips the Jacobian: forces from one backward pass, no standard
    errors. ``problem`` (from :func:`force_problem` with the same ``stress``) saves rebuilding it."""
    fp = problem if problem is not None else force_problem(model, atoms, stress, uncertainty)
    if fp.stress != stress:
        raise ConfigError(f"the force problem was built with stress={fp.stress}, not {stress}")
    per_circuit = force_shots(fp, shots if backend.shot_based else None, allocation)
    samples = backend.for_allocation(allocation).run(fp.combined, per_circuit, rng)

    base_k, n, coeffs, shift_coeffs = fp.base_circuits, fp.shifted.n_qubits, fp.energy.coeffs, fp.shift_coeffs
    base, rest = slice(0, base_k), slice(base_k, None)
    energy = fp.energy.constant + float(np.sum(coeffs * samples.mean[base]))
    energy_var = decoded_variance(coeffs, samples.cov[base], samples.shots[base])
    decoded = np.sum(shift_coeffs * samples.mean[rest], axis=1).reshape(base_k, n, 2)       # eV
    grad = (decoded[..., 0] - decoded[..., 1]) / 2                                          # (K, n) eV/rad
    grad_var = decoded_variance(shift_coeffs, samples.cov[rest], samples.shots[rest]).reshape(base_k, n, 2).sum(-1) / 4

    jac = fp.jacobian
    n_pos = 3 * len(atoms)
    if jac is not None:
        total = jac.T @ grad.reshape(-1)                                                    # (3N [+9],)
        total_var = (jac ** 2).T @ grad_var.reshape(-1)
        noise_var = float(np.mean(total_var[:n_pos]))
    else:
        probes = []
        if np.any(grad_var > 0):   # E[(J^T z)_a^2] = sum_kq J_kqa^2 Var(g_kq) = Var(F_a)
            rng = rng if rng is not None else np.random.default_rng()
            probes = [np.sqrt(grad_var) * rng.standard_normal(grad_var.shape)]
        total, *probed = input_vjps(model, atoms, [grad, *probes], stress)
        total_var = None
        noise_var = float(np.mean(probed[0][:n_pos] ** 2)) if probed else 0.0
    total = total + fp.pair_gradient                                                        # exact, no shots
    ref = _exact_reference(model, atoms, stress)
    volume = atoms.get_volume() if stress else None
    finite = np.isfinite(samples.shots).all()
    executed = samples.info.get("executed_shots", np.sum(per_circuit))
    return ForceEstimate(
        energy=energy, stderr=float(np.sqrt(energy_var.sum())),
        forces=-total[:n_pos].reshape(-1, 3),
        forces_stderr=None if total_var is None else np.sqrt(total_var[:n_pos]).reshape(-1, 3), force_noise_var=noise_var,
        stress=total[n_pos:].reshape(3, 3) / volume if stress else None,
        stress_stderr=np.sqrt(total_var[n_pos:]).reshape(3, 3) / volume if stress and total_var is not None else None,
        exact_energy=fp.energy.exact_energy, exact_forces=ref["forces"], exact_stress=ref["stress"],
        n_atoms=len(atoms), circuits=len(fp.combined), shots=int(executed) if finite else 0,
        backend=backend.name, allocation=allocation, qpu_seconds=samples.qpu_seconds)
