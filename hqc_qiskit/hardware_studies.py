"""Noise and shot studies of a trained HQC model: energy error vs noise scale / mitigation, and vs shots.

Results are JSON-serialisable rows; tables and plots are made from them (``plot_noise_study``,
``plot_shots_study``). Energies are compared with the model's exact (training-engine) energy, so the
numbers isolate what noise, mitigation and shot noise add to the model's own error.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from rich.progress import track

from .quantum.backends import SimulatorBackend
from .quantum.estimate import estimate_energy, per_shot_variance, readout_problem
from .quantum.mitigation import MitigationOptions


def _rmse_mev_per_atom(errors_ev: list[float], n_atoms: int) -> float:
    return float(np.sqrt(np.mean(np.square(errors_ev))) / n_atoms * 1000.0)


def noise_study(model, structures, noise: str, profiles: list[str], scales: list[float], mitigations: list[str],
                shots: float = np.inf, seed: int = 0) -> list[dict]:
    """Energy RMSE (meV/atom) vs the exact engine for each (profile, scale, mitigation). shots=inf: expectation values."""
    problems = [readout_problem(model, atoms) for atoms in structures]
    n_atoms = problems[0].n_atoms
    rows = []
    rng = np.random.default_rng(seed)
    grid = list(itertools.product(profiles, scales, mitigations))
    for profile, scale, mitigation in track(grid, description="noise study"):
        backend = SimulatorBackend(noise, profile, scale, MitigationOptions.parse(mitigation))
        errors, stderrs = [], []
        for atoms, problem in zip(structures, problems):
            if np.isfinite(shots):
                est = estimate_energy(model, atoms, backend, int(shots), "uniform", rng, problem)
            else:
                est = _expectation(backend, problem)
            errors.append(est.energy - problem.exact_energy)
            stderrs.append(est.stderr)
        rows.append({"ansatz": problems[0].batch.ansatz, "noise": noise, "profile": profile, "scale": scale,
                     "mitigation": mitigation, "shots": None if not np.isfinite(shots) else int(shots),
                     "structures": len(structures), "rmse_mev_per_atom": _rmse_mev_per_atom(errors, n_atoms),
                     "mean_error_mev_per_atom": float(np.mean(errors) / n_atoms * 1000.0)})
    return rows


class _Expectation:
    def __init__(self, energy, stderr):
        self.energy, self.stderr = energy, stderr


def _expectation(backend: SimulatorBackend, problem) -> _Expectation:
    """Infinite-shot energy on a simulator backend (noise and mitigation, no shot noise)."""
    samples = backend.run(problem.batch, np.full(len(problem.batch), np.inf), np.random.default_rng(0))
    return _Expectation(problem.constant + float(np.sum(problem.coeffs * samples.mean)), 0.0)


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


def shots_for_stderr(model, structures, target_mev_per_atom: float = 2.0) -> dict:
    """Total shots per structure for a target standard error, uniform vs optimal allocation (exact prior).

    For variances v_k: uniform needs K sum(v) / sigma^2 shots, optimal (sum sqrt v)^2 / sigma^2."""
    out = []
    for atoms in structures:
        problem = readout_problem(model, atoms)
        v = per_shot_variance(problem)
        sigma2 = (target_mev_per_atom * problem.n_atoms / 1000.0) ** 2
        out.append((len(v) * v.sum() / sigma2, np.sqrt(v).sum() ** 2 / sigma2))
    uniform, optimal = np.mean(out, axis=0)
    return {"target_mev_per_atom": target_mev_per_atom, "uniform_total_shots": float(uniform),
            "optimal_total_shots": float(optimal), "ratio_optimal_over_uniform": float(optimal / uniform)}


def plot_noise_study(rows: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = sorted({r["profile"] for r in rows})
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.5 * len(profiles), 3.6), squeeze=False)
    for ax, profile in zip(axes[0], profiles):
        for mitigation in sorted({r["mitigation"] for r in rows}):
            sel = sorted((r for r in rows if r["profile"] == profile and r["mitigation"] == mitigation), key=lambda r: r["scale"])
            ax.plot([r["scale"] for r in sel], [r["rmse_mev_per_atom"] for r in sel], "o-", label=mitigation)
        ax.set_title(f"{rows[0]['ansatz']} / {rows[0]['noise']} / {profile}", fontsize=9)
        ax.set_xlabel("noise scale")
        ax.set_ylabel("energy RMSE vs exact (meV/atom)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_shots_study(rows: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for allocation in sorted({r["allocation"] for r in rows}):
        sel = sorted((r for r in rows if r["allocation"] == allocation), key=lambda r: r["shots_per_circuit"])
        s = np.array([r["shots_per_circuit"] for r in sel])
        ax.loglog(s, [r["rmse_mev_per_atom"] for r in sel], "o-", label=f"{allocation}: measured RMSE")
        ax.loglog(s, [r["predicted_stderr_mev_per_atom"] for r in sel], "x:", label=f"{allocation}: predicted s.e.")
    sel = sorted(rows, key=lambda r: r["shots_per_circuit"])
    s0, e0 = sel[0]["shots_per_circuit"], sel[0]["predicted_stderr_mev_per_atom"]
    s = np.array([r["shots_per_circuit"] for r in sel], float)
    ax.loglog(s, e0 * np.sqrt(s0 / s), "k--", lw=0.8, label=r"$\propto 1/\sqrt{S}$")
    ax.set_xlabel("shots per circuit S")
    ax.set_ylabel("energy error (meV/atom)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
