"""Re-measured MC chains: which energy estimates are unbiased (docs/results.md, "Sampling cost: MD or MC on a QPU",
the --remeasure paragraph)

    bash runs/simulation/sampling_cost.sh e        # the chain (~7 min on one thread)
    python docs/evidence/mc_remeasure.py           # JSON and plot below (~1 min: exact energies of the two chains' frames)
    python docs/evidence/mc_remeasure.py --plot    # redraws the plot from the JSON

`hqc-qiskit mc --remeasure` measures the current state again at the start of every step. That fresh estimate is
drawn before the step decides anything, so it is an unbiased estimate of the state the chain is in; the estimate
the chain keeps after the step (the trial's when accepted, the fresh one when rejected) has been selected by the
acceptance and runs low. The chain here (runs/simulation/sampling_cost/mc_tuned_aer_2000_remeasure: the shipped
small HQC-cz model, 2000 K, 5 atoms moved by up to 0.1 Å, ideal Aer at 2000 shots per circuit) saves a frame
every 20 steps. For the frame at step s, the kept estimate is the log's ``energy_eV`` at step s and the fresh
estimate of the same state is ``fresh_energy_eV`` at step s + 1; both are compared with the exact-engine energy of
the frame. Shot noise is independent between frames 20 steps apart, so the per-frame differences are independent
and their means carry plain standard errors. As a check of the standard errors themselves, the same-setting
chain that reuses the energy (sampling_cost/mc_tuned_aer_2000), whose kept estimates follow N(E - beta s^2, s^2),
gives the scatter of (kept - exact + beta s^2) / s.

Writes docs/evidence/mc_remeasure.json and docs/img/mc_remeasure.png.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.mc import KB_EV
from hqc_qiskit.runlog import read_rows

from _evidence import exact_energies_per_atom, main, read_json, save_figure

ROOT = Path(__file__).resolve().parents[2]
CHAIN = ROOT / "runs" / "simulation" / "sampling_cost" / "mc_tuned_aer_2000_remeasure"
REUSING = ROOT / "runs" / "simulation" / "sampling_cost" / "mc_tuned_aer_2000"   # same setting, energy reused
MODEL = ROOT / "runs" / "study_readouts" / "small_hqc_cz_s0"   # the chain's, in runs/simulation/sampling_cost.sh
OUT_JSON = ROOT / "docs" / "evidence" / "mc_remeasure.json"
OUT_PNG = ROOT / "docs" / "img" / "mc_remeasure.png"
SKIP = 1 / 5   # of the chain before averaging, as the run summaries do


def _mean_mev(values: np.ndarray) -> dict:
    """Mean and standard error (meV/atom) of independent per-frame differences given in eV/atom."""
    return {"mean": 1e3 * float(values.mean()), "stderr": 1e3 * float(values.std(ddof=1) / np.sqrt(len(values)))}


def _reusing_chain_z(beta: float) -> dict:
    """The reusing chain's kept estimates, whose law is N(E - beta s^2, s^2) (hqc_qiskit.mc): the scatter of
    (kept - exact + beta s^2) / s over its frames after the first fifth checks the standard errors s themselves."""
    frames = read_structures(REUSING / "mc_traj.extxyz.gz")
    frames = frames[int(SKIP * len(frames)):]
    exact = exact_energies_per_atom(MODEL, frames) * np.array([len(a) for a in frames])
    kept, s = (np.array([a.info[k] for a in frames]) for k in ("energy_eV", "sigma_eV"))
    z = (kept - exact + beta * s**2) / s
    return {"chain": str(REUSING.relative_to(ROOT)), "n_frames": len(frames), "z_mean": float(z.mean()),
            "z_std": float(z.std(ddof=1))}


def gather() -> dict:
    summary = read_json(CHAIN / "mc_summary.json")
    if not summary["options"]["remeasure"]:
        raise SystemExit(f"{CHAIN}: not a --remeasure chain")
    n_atoms, temperature = summary["n_atoms"], summary["options"]["temperature"]
    rows = {r["step"]: r for r in read_rows(CHAIN / "mc_log.csv")}
    frames = [a for a in read_structures(CHAIN / "mc_traj.extxyz.gz")
              if a.info["step"] + 1 in rows and a.info["step"] >= SKIP * summary["steps"]]
    steps = [int(a.info["step"]) for a in frames]
    kept = np.array([rows[s]["energy_eV"] for s in steps]) / n_atoms
    frame_energy = np.array([a.info["energy_eV"] for a in frames]) / n_atoms
    if np.max(np.abs(kept - frame_energy)) > 1e-6:
        raise SystemExit(f"{CHAIN}: the frames' energy_eV is not the log's at their steps")
    fresh = np.array([rows[s + 1]["fresh_energy_eV"] for s in steps]) / n_atoms
    fresh_sigma = np.array([rows[s + 1]["fresh_sigma_eV"] for s in steps])
    exact = exact_energies_per_atom(MODEL, frames)
    beta = 1.0 / (KB_EV * temperature)
    return {
        "chain": str(CHAIN.relative_to(ROOT)), "model": str(MODEL.relative_to(ROOT)), "temperature_K": temperature,
        "shots_per_circuit": summary["options"]["shots"], "acceptance_ratio": summary["acceptance_ratio"],
        "skip_fraction": SKIP, "n_frames": len(frames), "frame_steps": steps,
        "fresh_minus_exact_mev_per_atom": _mean_mev(fresh - exact),
        "kept_minus_exact_mev_per_atom": _mean_mev(kept - exact),
        # the fresh estimates' own standard errors against their realized scatter: 1 when the sigma is right
        "fresh_z_std": float(np.std((fresh - exact) * n_atoms / fresh_sigma, ddof=1)),
        "sigma_mev_per_atom": 1e3 * float(fresh_sigma.mean() / n_atoms),
        # the bias of kept estimates when the current energy is reused instead (mc.reused_energy_unbiased), for scale
        "beta_sigma2_mev_per_atom": 1e3 * float(beta * np.mean(fresh_sigma ** 2) / n_atoms),
        "reusing_chain_z": _reusing_chain_z(beta),
        "exact_mean_eV_per_atom": float(exact.mean()),
        "summary_averages": summary["averages"],
        "per_frame_eV_per_atom": {"exact": exact.tolist(), "fresh": fresh.tolist(), "kept": kept.tolist()},
    }


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = {k: np.array(v) for k, v in result["per_frame_eV_per_atom"].items()}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bins = np.linspace(-15, 15, 41)
    for key, label in (("fresh", "fresh estimate of the state (start of the next step)"),
                       ("kept", "estimate kept by the acceptance")):
        d = result[f"{key}_minus_exact_mev_per_atom"]
        ax.hist(1e3 * (per[key] - per["exact"]), bins, histtype="step", lw=1.6,
                label=f"{label}: {d['mean']:+.2f} ± {d['stderr']:.2f}")
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlabel("estimate − exact energy of the same state (meV/atom)")
    ax.set_ylabel("frames")
    ax.set_title(f"MC --remeasure, {result['shots_per_circuit']} shots, {result['n_frames']} frames", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, OUT_PNG, dpi=130)


def report(result: dict) -> None:
    for key in ("fresh", "kept"):
        d = result[f"{key}_minus_exact_mev_per_atom"]
        print(f"{key:5s} - exact: {d['mean']:+.3f} ± {d['stderr']:.3f} meV/atom over {result['n_frames']} frames")
    print(f"fresh z std {result['fresh_z_std']:.3f}; beta <s^2> {result['beta_sigma2_mev_per_atom']:.2f} meV/atom")
    r = result["reusing_chain_z"]
    print(f"reusing chain, {r['n_frames']} frames: z mean {r['z_mean']:+.3f}, std {r['z_std']:.3f}")


if __name__ == "__main__":
    main(__doc__, gather, OUT_JSON, plot, report)
