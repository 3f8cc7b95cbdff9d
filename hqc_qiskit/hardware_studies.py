"""Noise and shot studies of a trained HQC model: energy error vs noise scale / mitigation, and vs shots.

Results are JSON-serialisable rows; tables and plots are made from them (``plots.plot_noise_study``,
``plots.plot_shots_study``). Energies are compared with the model's exact (training-engine) energy, so the
numbers isolate what noise, mitigation and shot noise add to the model's own error.
"""

from __future__ import annotations

import itertools

import numpy as np
from rich.progress import track

from .errors import HQCError
from .quantum.backends import SimulatorBackend
from .quantum.estimate import estimate_energy, per_shot_variance, readout_problem
from .quantum.mitigation import MitigationOptions
from .quantum.profiles import load_profile


def _rmse_mev_per_atom(errors_ev: list[float], n_atoms: int) -> float:
    return float(np.sqrt(np.mean(np.square(errors_ev))) / n_atoms * 1000.0)


_NOISE_KEY = ("ansatz", "noise", "profile", "idle_delays", "scale", "mitigation", "shots", "structures")


def noise_study(model, structures, noise: str, profiles: list[str], scales: list[float], mitigations: list[str],
                shots: float = np.inf, seed: int = 0, done: list[dict] = (), on_row=None,
                engine: str = "batched") -> list[dict]:
    """Energy RMSE (meV/atom) vs the exact engine for each (profile, scale, mitigation). shots=inf: expectation values.

    ``done``: rows of an earlier, interrupted run; grid points with the same settings are not recomputed.
    ``on_row(rows)`` is called after every new point (to save partial results). ``engine``: the noisy
    simulation engine of ``SimulatorBackend`` (both give the same distributions to 1e-8, tests/test_density.py).
    """
    problems = [readout_problem(model, atoms) for atoms in structures]
    n_atoms = problems[0].n_atoms
    shots_value = None if not np.isfinite(shots) else int(shots)
    common = {"ansatz": problems[0].batch.ansatz, "noise": noise, "shots": shots_value, "structures": len(structures)}
    # idle_delays: whether the profile schedules idle windows as (relaxing) delays; rows computed with other
    # settings of a profile are stale. Rows from before the field existed were scheduled only with DD.
    current = {p: load_profile(p) for p in profiles}
    idle = {p: prof.scheduled for p, prof in current.items()}

    def idle_of(row):
        prof = current.get(row["profile"])
        return row.get("idle_delays", None if prof is None else prof.dynamical_decoupling != "none")

    rows = [{**r, "idle_delays": idle_of(r)} for r in done if all(r.get(k) == v for k, v in common.items())
            and (r["profile"] not in idle or idle_of(r) == idle[r["profile"]])]
    finished = {tuple(r.get(k) for k in _NOISE_KEY) for r in rows}
    rng = np.random.default_rng(seed)
    grid = [(p, sc, m) for p, sc, m in itertools.product(profiles, scales, mitigations)
            if tuple({**common, "profile": p, "idle_delays": idle[p], "scale": sc, "mitigation": m}[k]
                     for k in _NOISE_KEY) not in finished]
    device_key = device = None   # one simulated device per (profile, scale): its distributions serve every mitigation
    for profile, scale, mitigation in track(grid, description="noise study"):
        if device_key != (profile, scale):   # the grid is ordered by (profile, scale): earlier devices are done
            device_key = (profile, scale)
            device = SimulatorBackend(noise, profile, scale, keep_distributions=True, engine=engine)
        backend = device.with_mitigation(MitigationOptions.parse(mitigation))
        errors, stderrs = [], []
        for atoms, problem in zip(structures, problems):
            if np.isfinite(shots):
                est = estimate_energy(model, atoms, backend, int(shots), "uniform", rng, problem)
            else:   # expectation values; REM still calibrates with shots, from a fixed seed per point
                est = estimate_energy(model, atoms, backend, None, "uniform", np.random.default_rng(0), problem)
            errors.append(est.energy - problem.exact_energy)
            stderrs.append(est.stderr)
        rows.append({**common, "profile": profile, "idle_delays": idle[profile], "scale": scale, "mitigation": mitigation,
                     "rmse_mev_per_atom": _rmse_mev_per_atom(errors, n_atoms),
                     "mean_error_mev_per_atom": float(np.mean(errors) / n_atoms * 1000.0)})
        if on_row is not None:
            on_row(rows)
    return rows


def shots_study(model, structures, backend, shots_list: list[int], allocations=("uniform", "optimal"),
                repeats: int = 3, seed: int = 0) -> list[dict]:
    """Energy RMSE (meV/atom) vs shots per circuit for each allocation, with the predicted standard error."""
    problems = [readout_problem(model, atoms) for atoms in structures]
    n_atoms = problems[0].n_atoms
    rng = np.random.default_rng(seed)
    rows = []
    for allocation, shots in track(list(itertools.product(allocations, shots_list)), description="shots study"):
        errors, stderrs = [], []
        for atoms, problem in zip(structures, problems):
            for _ in range(repeats):
                est = estimate_energy(model, atoms, backend, shots, allocation, rng, problem)
                errors.append(est.energy - problem.exact_energy)
                stderrs.append(est.stderr)
        rows.append({"allocation": allocation, "shots_per_circuit": int(shots), "backend": backend.name,
                     "samples": len(errors), "rmse_mev_per_atom": _rmse_mev_per_atom(errors, n_atoms),
                     "predicted_stderr_mev_per_atom": float(np.sqrt(np.mean(np.square(stderrs))) / n_atoms * 1000.0)})
    return rows


def shots_for_stderr(model, structures, target_mev_per_atom: float = 2.0, zne_weights=None) -> dict:
    """Total shots per structure for a target standard error, uniform vs optimal allocation (exact prior).

    For variances v_k: uniform needs K sum(v) / sigma^2 shots, optimal (sum sqrt v)^2 / sigma^2. With ZNE
    (extrapolation weights gamma over F folds, every fold's per-shot variance taken as the prior's v_k):
    uniform, every fold with the same shots, needs F K sum(gamma^2) sum(v) / sigma^2; optimal, shots in
    proportion to |gamma_j| sqrt(v_k) over circuits and folds, (sum |gamma|)^2 (sum sqrt v)^2 / sigma^2."""
    if not 0 < target_mev_per_atom < np.inf:
        raise HQCError(f"the target standard error must be a positive number of meV/atom, got {target_mev_per_atom}")
    g = np.ones(1) if zne_weights is None else np.asarray(zne_weights, dtype=float)
    out = []
    for atoms in structures:
        problem = readout_problem(model, atoms)
        v = per_shot_variance(problem)
        sigma2 = (target_mev_per_atom * problem.n_atoms / 1000.0) ** 2
        out.append((len(g) * np.sum(g**2) * len(v) * v.sum() / sigma2,
                    np.abs(g).sum() ** 2 * np.sqrt(v).sum() ** 2 / sigma2))
    uniform, optimal = np.mean(out, axis=0)
    return {"target_mev_per_atom": target_mev_per_atom, "uniform_total_shots": float(uniform),
            "optimal_total_shots": float(optimal), "ratio_optimal_over_uniform": float(optimal / uniform)}
