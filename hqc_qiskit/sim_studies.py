"""MC study: how many shots plain and penalty acceptance need to reproduce the exact-energy chain's g(r).

Every chain is a resumable :func:`hqc_qiskit.mc_driver.run_mc` run in its own folder, so an
interrupted study continues where it stopped. The reference is an exact-energy chain; a second
exact chain with another seed gives the statistical floor of the g(r) distance.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from .autocorr import block_average
from .data.dataset import read_structures
from .mc_driver import CHECKPOINT, TRAJECTORY, MCOptions, energy_measure, run_mc
from .rdf import compare_rdf, compute_rdf


def _chain(model, atoms, backend, opt: MCOptions, folder: Path, progress) -> dict:
    return run_mc(model, atoms, backend, opt, folder, resume=(folder / CHECKPOINT).exists(), progress=progress)


def shots_to_match(rows: list[dict], target: float, acceptance: str) -> float:
    """Fewest shots at which ``acceptance``'s g(r) distance falls to ``target`` (log-linear interpolation); NaN if never."""
    pts = sorted((r["shots"], r["integrated_sq_diff"]) for r in rows if r["acceptance"] == acceptance)
    for k, (s, d) in enumerate(pts):
        if d <= target:
            if k == 0:
                return float(s)
            (s0, d0) = pts[k - 1]
            frac = (d0 - target) / (d0 - d)
            return float(math.exp(math.log(s0) + frac * (math.log(s) - math.log(s0))))
    return math.nan


def mc_shots_study(model, atoms, make_backend: Callable, shots: list[int], base: MCOptions, out: Path,
                   skip: float = 1 / 3, r_max: float = 6.0, n_bins: int = 60,
                   progress: Callable[[str], Callable | None] = lambda _label: None) -> dict:
    """Exact chains (seeds s, s+1) and shot-noisy chains (plain and penalty at each S); g(r) distances to the exact chain."""
    out = Path(out)
    chains = {"exact": (None, base), "exact_seed2": (None, replace(base, seed=base.seed + 1))}
    for s in shots:
        for rule in ("plain", "penalty"):
            chains[f"{rule}_{s}"] = ("aer", replace(base, shots=s, acceptance=rule))
    summaries = {}
    for label, (backend_name, opt) in chains.items():
        backend = make_backend(backend_name) if backend_name else None
        summaries[label] = _chain(model, atoms, backend, opt, out / label, progress(label))

    exact_measure = energy_measure(model, atoms, None, base)
    rdfs, energies = {}, {}
    for label in chains:
        frames = read_structures(out / label / TRAJECTORY)
        frames = frames[int(skip * len(frames)):]
        rdfs[label] = compute_rdf(frames, r_max, n_bins)
        energies[label] = np.array([exact_measure(a.positions, None).energy for a in frames]) / len(atoms) * 1000.0
    ref = rdfs["exact"]
    e_mean = {label: block_average(e)[:2] for label, e in energies.items()}
    rows = []
    for label, summary in summaries.items():
        opt = chains[label][1]
        cmp = compare_rdf(rdfs[label], ref)
        rows.append({"label": label, "acceptance": "exact" if chains[label][0] is None else opt.acceptance,
                     "shots": opt.shots if chains[label][0] else math.inf, "steps": summary["steps"],
                     "acceptance_ratio": summary["acceptance_ratio"], "integrated_sq_diff": cmp["integrated_sq_diff"],
                     "first_peak_shift": cmp["first_peak_shift"], "first_peak_height_diff": cmp["first_peak_height_diff"],
                     "mean_exact_epot_mev_per_atom": float(e_mean[label][0]), "mean_exact_epot_stderr": float(e_mean[label][1]),
                     "wall_seconds": summary["wall_seconds"]})
    noisy = [r for r in rows if r["acceptance"] in ("plain", "penalty")]
    top = max(shots)
    plain_top = next(r["integrated_sq_diff"] for r in noisy if r["acceptance"] == "plain" and r["shots"] == top)
    floor = next(r["integrated_sq_diff"] for r in rows if r["label"] == "exact_seed2")
    # a distance at or below the floor (two exact chains' distance) is statistical noise: no shot count can be read off
    resolved = plain_top > floor
    penalty_needed = shots_to_match(noisy, plain_top, "penalty") if resolved else math.nan
    at_floor = {rule: shots_to_match(noisy, floor, rule) for rule in ("plain", "penalty")}
    result = {"rows": rows, "floor_integrated_sq_diff": floor, "resolved": resolved,
              "plain_distance_at_max_shots": plain_top, "penalty_shots_for_that_distance": penalty_needed,
              "ratio_penalty_over_plain_shots": penalty_needed / top,
              "shots_at_floor": at_floor,
              # the common accuracy when plain is already within the floor at the most shots: the floor itself (g(r)
              # as close to the exact chain as a second exact chain is); crossings interpolated between noisy points
              "ratio_at_floor": at_floor["penalty"] / at_floor["plain"],
              "options": {k: v for k, v in vars(base).items()},
              "skip": skip, "r_max": r_max, "n_bins": n_bins}
    return {"result": result, "rdfs": rdfs}


def describe_shots_study(result: dict) -> list[str]:
    """The study's findings in plain lines (printed by ``hqc-qiskit mc-study`` and the benchmark)."""
    at_floor = result["shots_at_floor"]
    lines = [f"floor (exact chain, other seed): {result['floor_integrated_sq_diff']:.4f} Å; plain at the most shots: "
             f"{result['plain_distance_at_max_shots']:.4f} Å; penalty reaches it at "
             f"{result['penalty_shots_for_that_distance']:.4g} shots (ratio {result['ratio_penalty_over_plain_shots']:.3f})",
             f"shots to reach the floor: plain {at_floor['plain']:.4g}, penalty {at_floor['penalty']:.4g} "
             f"(ratio penalty / plain {result['ratio_at_floor']:.3f})"]
    if not result["resolved"]:
        lines.append("plain Metropolis at the most shots is already within the statistical floor: its distance there "
                     "is noise, so compare the shots each rule needs to reach the floor (ratio above)")
    return lines
