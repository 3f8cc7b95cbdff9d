"""MD on shot-based forces: what shot noise does to a trajectory, against the prediction (docs/results.md,
"MD on shot-based forces")

    bash runs/simulation/shot_md.sh                 # the chains (~75 min of CPU; two streams: a and b)
    python docs/evidence/shot_md.py                 # summarizes them: JSON and plot below (~1 min)
    python docs/evidence/shot_md.py --plot          # redraws the plot from the JSON

Model runs/study_readouts/small_hqc_cz_s0 (192 readout circuits per 64-atom structure, so 192 x 17 = 3264
per force evaluation), first test frame, 2000 K, 0.5 fs, forces measured on ideal Aer with S shots per
circuit (`hqc-qiskit md --backend aer --shots S`; S = 2 and 10 under Langevin, 100 and 1000 in NVE):

- Langevin (3000 steps, friction 0.01/fs, and a weak 0.002/fs where the shift is 5x larger): mean T and mean
  exact potential energy over the last two thirds (block standard errors, 5 blocks), against the exact-engine
  chain of the same friction and the shift that the estimated force noise predicts
  (``hqc_qiskit.md.shot_noise_heating``: noise_var dt / (2 m gamma k_B)); g(r) against the exact chain's,
  next to the floor of two exact chains with different seeds. The 2-shot chains once more with
  ``--compensate-noise`` (the thermostat lowered by the predicted shift at every step).
- NVE (1000 steps): drift of the exact total energy (E_pot by the exact engine + E_kin) against the
  predicted heating 3 noise_var dt / 2m per atom per step.
- Cost per step on ibm_brisbane by fake_brisbane's cost model, next to one Monte Carlo step (one energy,
  penalty acceptance) at 2000 shots (where the MC study's penalty chains match the exact one) and at the
  paper's 50000.

Writes docs/evidence/shot_md.json and docs/img/shot_md.png.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from hqc_qiskit.checkpoint import load_model
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.autocorr import block_average
from hqc_qiskit.rdf import compare_rdf, compute_rdf
from hqc_qiskit.runlog import read_rows

from _evidence import main, save_figure

ROOT = Path(__file__).resolve().parents[2]
RUN = "runs/study_readouts/small_hqc_cz_s0"
CHAINS = ROOT / "runs" / "simulation" / "shot_md"
TEST = ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.test.extxyz.gz"
# Langevin conditions: (friction 1/fs, label) -> chains (seeds); the first condition of a friction is exact
LANGEVIN = {(0.01, "exact"): ["langevin_exact", "langevin_exact_seed1", "langevin_exact_seed2"],
            (0.01, "2 shots"): ["langevin_aer_2", "langevin_aer_2_seed1"],
            (0.01, "10 shots"): ["langevin_aer_10"],
            (0.01, "2 shots, compensated"): ["langevin_aer_2_compensated", "langevin_aer_2_compensated_seed1"],
            (0.002, "exact"): ["weak_exact"],
            (0.002, "2 shots"): ["weak_aer_2"],
            (0.002, "2 shots, compensated"): ["weak_aer_2_compensated"]}
TARGET_K = 2000.0
SKIP = 1 / 3   # of a chain's log and frames, before averaging
NVE = ["nve_exact", "nve_aer_100", "nve_aer_100_seed1", "nve_aer_1000", "nve_aer_1000_seed1"]
MC_SHOTS = [2000, 50000]
OUT_JSON = ROOT / "docs" / "evidence" / "shot_md.json"
OUT_PNG = ROOT / "docs" / "img" / "shot_md.png"


def _shots(name: str) -> float:
    return float(name.split("_aer_")[1].split("_")[0]) if "_aer_" in name else float("inf")


def _trajectory(name: str) -> Path:
    plain = CHAINS / name / "md_traj.extxyz"
    return plain if plain.exists() else plain.with_name("md_traj.extxyz.gz")


def _tail_mean(values: np.ndarray, n_blocks: int) -> tuple[float, float]:
    """Mean and block standard error of a logged series after the first third (NaN error below 2 blocks)."""
    tail = values[int(SKIP * len(values)):]
    if n_blocks < 2:
        return float(tail.mean()), float("nan")
    mean, err, _ = block_average(tail[:, None], n_blocks)
    return float(mean[0]), float(err[0])


@functools.cache
def _run(name: str) -> tuple[dict, list[dict]]:
    """A run's summary and log rows (read once: the rows, the NVE walk and the plot all use them)."""
    return json.loads((CHAINS / name / "md_summary.json").read_text()), read_rows(CHAINS / name / "md_log.csv")


def chain_row(name: str, n_atoms: int) -> dict:
    """Means over the last two thirds; blocks of at least 2 / gamma (two relaxation times of a Langevin
    thermostat; 5 blocks for NVE), so that the block standard error is not an underestimate."""
    summary, rows = _run(name)
    opt = summary["options"]
    averaged_fs = (1 - SKIP) * summary["steps"] * opt["timestep"]
    langevin = opt["thermostat"] == "langevin" and opt["ensemble"] == "nvt"
    n_blocks = min(5, int(averaged_fs // (2.0 / opt["friction"]))) if langevin else 5
    shot = "force_noise_rms_eV_A" in summary
    e_exact = np.array([r["E_pot_exact_eV" if shot else "E_pot_eV"] for r in rows]) / n_atoms * 1000.0
    t, t_err = _tail_mean(np.array([r["T_K"] for r in rows]), n_blocks)
    e, e_err = _tail_mean(e_exact, n_blocks)
    row = {"chain": name, "shots_per_circuit": _shots(name), "steps": summary["steps"], "stable": summary["stable"],
           "seed": opt["seed"], "blocks": n_blocks,
           "mean_T_K": t, "mean_T_stderr_K": t_err, "mean_exact_epot_mev_per_atom": e, "mean_exact_epot_stderr": e_err,
           "wall_seconds_per_step": summary["wall_seconds"] / summary["steps"]}
    if "mean_T_thermostat_K" in summary:
        row["mean_T_thermostat_K"] = summary["mean_T_thermostat_K"]
    if shot:
        row.update(force_noise_rms_eV_A=summary["force_noise_rms_eV_A"], force_noise_est_eV_A=summary["force_noise_est_eV_A"],
                   predicted=summary["predicted"],
                   drift_exact_total_mev_per_atom_ps=summary["drift_exact_total_mev_per_atom_ps"])
    else:
        row.update(force_noise_rms_eV_A=0.0, drift_exact_total_mev_per_atom_ps=summary["drift_conserved_mev_per_atom_ps"])
    return row


def energy_walk(name: str, frame) -> dict:
    """NVE: increments of the exact total energy per atom between log rows (10 steps) against the random walk
    that the estimated noise predicts at each row's temperature, and the drift with its standard error."""
    from hqc_qiskit.md import MDOptions, shot_noise_heating

    summary, rows = _run(name)
    opt = MDOptions(**summary["options"])
    shot = "E_pot_exact_eV" in rows[0]
    e = np.array([r["E_pot_exact_eV" if shot else "E_pot_eV"] + r["E_kin_eV"] for r in rows]) / len(frame) * 1000.0
    d = np.diff(e)
    row_ps = opt.log_every * opt.timestep / 1000.0
    out = {"increment_std_mev_per_atom": float(d.std()), "row_ps": row_ps,
           "drift_mev_per_atom_ps": float(d.mean() / row_ps),
           "drift_stderr_mev_per_atom_ps": float(d.std(ddof=1) / np.sqrt(len(d)) / row_ps)}
    if shot:
        walk = [shot_noise_heating(r["force_noise_est_eV_A"] ** 2, opt, frame.get_masses(), r["T_K"])
                ["energy_walk_mev_per_atom_sqrt_ps"] * np.sqrt(row_ps) for r in rows[:-1]]
        out["predicted_increment_std_mev_per_atom"] = float(np.sqrt(np.mean(np.square(walk))))
    return out


def costs(frame) -> dict:
    """QPU seconds and shots of one MD step (forces) and one MC step (an energy) on ibm_brisbane's cost model."""
    from hqc_qiskit.quantum.backends import make_backend
    from hqc_qiskit.quantum.estimate import readout_problem, shots_per_circuit
    from hqc_qiskit.quantum.shot_forces import force_problem, force_shots

    model = load_model(ROOT / RUN).double()
    brisbane = make_backend("fake_brisbane")
    fp = force_problem(model, frame, uncertainty=False)
    energy = readout_problem(model, frame)
    out = {}
    for s in (2, 10, 100, 1000):
        c = brisbane.cost(fp.combined, force_shots(fp, s))
        out[f"md_step_{s}_shots"] = {"circuits": c["circuits"], "shots": c["shots"], "qpu_seconds": c["qpu_seconds"]}
    for s in MC_SHOTS:
        c = brisbane.cost(energy.batch, shots_per_circuit(energy, s))
        out[f"mc_step_{s}_shots"] = {"circuits": c["circuits"], "shots": c["shots"], "qpu_seconds": c["qpu_seconds"]}
    return out


def collect() -> dict:
    frame = read_structures(TEST)[0]
    n = len(frame)
    nve = [dict(chain_row(c, n), **energy_walk(c, frame)) for c in NVE]
    langevin, conditions, rdfs = [], [], {}
    for (friction, label), chains in LANGEVIN.items():
        rows = [dict(chain_row(c, n), friction_per_fs=friction, condition=label) for c in chains]
        for c in chains:
            frames = read_structures(_trajectory(c))
            rdfs[c] = compute_rdf(frames[int(SKIP * len(frames)):])
        reference = LANGEVIN[(friction, "exact")][0]
        for row in rows:
            row["rdf_vs_exact"] = compare_rdf(rdfs[row["chain"]], rdfs[reference])
        langevin += rows
        errs = np.array([r["mean_T_stderr_K"] for r in rows])
        predicted = [r["predicted"]["langevin_T_shift_K"] for r in rows if "predicted" in r]
        conditions.append({"friction_per_fs": friction, "condition": label, "chains": chains,
                           "compensated": "compensated" in label,
                           "mean_T_K": float(np.mean([r["mean_T_K"] for r in rows])),
                           "mean_T_stderr_K": float(np.sqrt(np.sum(errs**2)) / len(rows)),   # NaN if unknown
                           "T_shift_vs_target_K": float(np.mean([r["mean_T_K"] for r in rows]) - TARGET_K),
                           "predicted_shift_uncompensated_K": float(np.mean(predicted)) if predicted else 0.0,
                           "expected_shift_K": 0.0 if "compensated" in label or not predicted else float(np.mean(predicted)),
                           "mean_exact_epot_mev_per_atom": float(np.mean([r["mean_exact_epot_mev_per_atom"] for r in rows]))})
    report = {"model": RUN, "structure": f"{TEST.relative_to(ROOT)} frame 0", "n_atoms": n, "temperature_K": 2000.0,
              "timestep_fs": 0.5, "backend": "aer (ideal, shots)", "skipped_fraction": SKIP,
              "commands": "bash runs/simulation/shot_md.sh; python docs/evidence/shot_md.py",
              "hardware": "2 CPU cores, two chains at a time (OMP_NUM_THREADS=1 each)",
              "langevin_conditions": conditions, "langevin": langevin, "nve": nve, "cost_ibm_brisbane": costs(frame),
              "rdf": {c: rdfs[c].as_dict() for c in ("langevin_exact", "langevin_exact_seed1", "langevin_aer_2",
                                                     "langevin_aer_10", "langevin_aer_2_compensated")}}
    return report


def summary(report: dict) -> None:
    for c in report["langevin_conditions"]:
        print(f"γ {c['friction_per_fs']:g} {c['condition']:>22}: T {c['mean_T_K']:7.1f} ± {c['mean_T_stderr_K']:5.1f} K "
              f"(expected shift {c['expected_shift_K']:+.0f} K), exact E_pot {c['mean_exact_epot_mev_per_atom']:.2f} meV/atom")
    for row in report["langevin"] + report["nve"]:
        print(f"{row['chain']:>22}: T {row['mean_T_K']:7.1f} ± {row['mean_T_stderr_K']:5.1f} K, exact E_pot "
              f"{row['mean_exact_epot_mev_per_atom']:10.2f} ± {row['mean_exact_epot_stderr']:.2f} meV/atom, noise "
              f"{row['force_noise_rms_eV_A']:.3f} eV/Å, predicted {row.get('predicted', {})}, drift "
              f"{row['drift_exact_total_mev_per_atom_ps']:+.3f}, g(r) isd {row.get('rdf_vs_exact', {}).get('integrated_sq_diff', '')}")


def plot(report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_g, ax_e) = plt.subplots(1, 3, figsize=(15, 4.4))
    colors = {"exact": "0.35", "2 shots": "C0", "10 shots": "C1", "2 shots, compensated": "C2"}
    for cond in report["langevin_conditions"]:
        weak = cond["friction_per_fs"] < 0.01
        color = colors[cond["condition"]]
        err = None if np.isnan(cond["mean_T_stderr_K"]) else cond["mean_T_stderr_K"]
        runs = len(cond["chains"])
        ax_t.errorbar(cond["expected_shift_K"], cond["T_shift_vs_target_K"], err, fmt="s" if cond["compensated"] else "o",
                      mfc="none" if weak else color, color=color, capsize=3,
                      label=f"{cond['condition']}, γ {cond['friction_per_fs']:g}/fs, {runs} run{'s' if runs > 1 else ''}")
    top = max(c["expected_shift_K"] for c in report["langevin_conditions"]) * 1.1
    ax_t.plot([0, top], [0, top], "k--", lw=1, label="measured = expected")
    ax_t.set(xlabel="expected shift (K): noise² dt / (2 m γ k_B), 0 when compensated", ylabel="mean T - 2000 K",
             title="Langevin: temperature (open: γ 0.002/fs, no error bar)")
    ax_t.legend(fontsize=7)
    for chain, rdf in report["rdf"].items():
        ax_g.plot(rdf["r"], rdf["g"], label=chain.removeprefix("langevin_"), lw=1.2)
    ax_g.set(xlabel="r (Å)", ylabel="g(r)", title="Langevin 2000 K: g(r)", xlim=(1.8, 6.0))
    ax_g.legend(fontsize=8)
    for row in report["nve"]:
        _, rows = _run(row["chain"])
        n_atoms = report["n_atoms"]
        col = "E_pot_exact_eV" if "predicted" in row else "E_pot_eV"
        t = np.array([r["time_fs"] for r in rows]) / 1000.0
        e = np.array([r[col] + r["E_kin_eV"] for r in rows]) / n_atoms * 1000.0
        line, = ax_e.plot(t, e - e[0], label=f"{row['chain'].removeprefix('nve_')}: mean drift "
                          f"{row['drift_mev_per_atom_ps']:+.1f} ± {row['drift_stderr_mev_per_atom_ps']:.1f} meV/atom/ps")
        if "predicted" in row:
            drift = row["predicted"]["heating_mev_per_atom_ps"] * t
            walk = row["predicted_increment_std_mev_per_atom"] * np.sqrt(t / row["row_ps"])
            ax_e.plot(t, drift, "--", color=line.get_color(), lw=1)
            ax_e.fill_between(t, drift - walk, drift + walk, color=line.get_color(), alpha=0.12, lw=0)
    ax_e.set(xlabel="time (ps)", ylabel="exact E_tot - E_tot(0) (meV/atom)",
             title="NVE: predicted drift (dashed) ± walk (1σ)")
    ax_e.legend(fontsize=7, loc="lower left")
    save_figure(fig, OUT_PNG, dpi=110)
    print(f"written: {OUT_JSON.relative_to(ROOT)}, {OUT_PNG.relative_to(ROOT)}")


if __name__ == "__main__":
    main(__doc__, collect, OUT_JSON, plot, summary)
