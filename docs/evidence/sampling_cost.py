"""Sampling cost on a QPU: Langevin MD on few-shot forces against Metropolis MC on many-shot energies
(docs/results.md, "Sampling cost: MD or MC on a QPU")

    bash runs/simulation/sampling_cost.sh           # long chains (~2 h of CPU in four streams a-d)
    python docs/evidence/sampling_cost.py           # JSON and plot below (~3 min: exact energies of MC frames)
    python docs/evidence/sampling_cost.py --plot    # redraws the plot from the JSON

A sampler's cost for an equilibrium average is (QPU seconds per step) x (steps per independent sample), the
second being the integrated autocorrelation time tau (hqc_qiskit.autocorr: var(mean) = sigma^2 tau / N). Both
are measured here on the shipped small HQC-cz model at 2000 K from the first test frame:

- tau in steps, of two observables of the visited states: the exact potential energy per atom (what the MC
  study and the paper average) and the mean coordination number within 3.1 Å (structure). Each setting takes
  tau from long exact-engine chains of its sampler (runs/simulation/sampling_cost/: Langevin MD 0.5 fs,
  friction 0.01/fs; MC moving 5 atoms by 0.1 Å (the MC study's step) or 0.015 Å (the paper's and `mc`'s
  default)), or from chains with the setting's own shot noise where those are long enough: MD at 2 shots per
  circuit (four chains of runs/simulation/shot_md/ pooled), MC at 2000 shots per circuit with the current
  energy reused as `mc` does by default (sampling_cost/mc_tuned_aer_2000). Also reported: a 10-shot MD chain,
  the MC study's chain that measures both energies every step, and short exact chains (which show how much a
  short chain underestimates tau).
- QPU seconds per step by fake_brisbane's cost model (docs/evidence/shot_md.json, "cost_ibm_brisbane": one MD
  step = 3264 circuits of the parameter-shift forces, one MC step = one energy of 192 circuits).

Writes docs/evidence/sampling_cost.json and docs/img/sampling_cost.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from emcee.autocorr import function_1d
from vesin import NeighborList

from hqc_qiskit.autocorr import series_stats
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.runlog import read_rows

from _evidence import exact_energies_per_atom, main, save_figure

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "runs" / "study_readouts" / "small_hqc_cz_s0"
SIM = ROOT / "runs" / "simulation"
COSTS = ROOT / "docs" / "evidence" / "shot_md.json"
OUT_JSON = ROOT / "docs" / "evidence" / "sampling_cost.json"
OUT_PNG = ROOT / "docs" / "img" / "sampling_cost.png"
SKIP = 1 / 5       # of a chain before averaging, as the run summaries do
TARGET_MEV = 1.0   # the standard error of <E_pot> (meV/atom) that the QPU-time column is for
# the usual first-shell radius of liquid Si (Å); its g(r) minimum is shallow here (DFT at 3000 K: 3.1-3.3 Å), and
# any fixed shell gives a structural observable whose autocorrelation is what matters
COORDINATION_CUTOFF_A = 3.1
# chains pooled into one estimate of tau (independent chains of one setting, same length):
# (label, kind, folders under runs/simulation, shots per circuit or None for exact)
GROUPS = [
    ("MD exact, long", "md", ["sampling_cost/md_langevin_exact"], None),
    ("MD exact, 3 short chains", "md", [f"shot_md/langevin_exact{s}" for s in ("", "_seed1", "_seed2")], None),
    ("MD 2 shots, 4 short chains", "md", [f"shot_md/langevin_aer_2{s}" for s in
                                           ("", "_seed1", "_compensated", "_compensated_seed1")], 2),
    ("MD 10 shots, 1 short chain", "md", ["shot_md/langevin_aer_10"], 10),
    ("MC 0.1 Å exact, long", "mc", ["sampling_cost/mc_tuned_exact"], None),
    ("MC 0.1 Å exact, 2 short chains", "mc", ["mc_study/exact", "mc_study/exact_seed2"], None),
    ("MC 0.1 Å 2000 shots, energy reused", "mc", ["sampling_cost/mc_tuned_aer_2000"], 2000),
    ("MC 0.1 Å 2000 shots, both measured, short", "mc", ["mc_study/penalty_2000"], 2000),
    ("MC 0.015 Å exact, 2 long chains", "mc", ["sampling_cost/mc_paper_exact", "sampling_cost/mc_paper_exact_seed1"], None),
]
# the settings compared per QPU second: (label, group whose tau is used, shots per circuit); an MC step measures one
# energy.
# tau comes from chains with the setting's own shot noise where they are long enough (MD at 2 shots: four chains
# pooled; MC at 2000 shots with the energy reused, whose acceptance falls from 0.46 to 0.28: a noisy low estimate
# of the current state is kept until a move is accepted), else from the exact chains of the sampler, a lower bound
# for MC (at 50000 shots its acceptance barely moves: the MC study's remeasuring chain kept 0.46)
SETTINGS = [
    ("MD, 2 shots per circuit", "MD 2 shots, 4 short chains", 2),
    ("MD, 10 shots per circuit", "MD exact, long", 10),
    ("MC 0.1 Å, 2000 shots", "MC 0.1 Å 2000 shots, energy reused", 2000),
    ("MC 0.1 Å, 50000 shots", "MC 0.1 Å exact, long", 50000),
    ("MC 0.015 Å (paper), 50000 shots", "MC 0.015 Å exact, 2 long chains", 50000),
]


def _trajectory(folder: Path, kind: str) -> Path:
    plain = folder / f"{kind}_traj.extxyz"
    return plain if plain.exists() else plain.with_name(plain.name + ".gz")


def coordination(frames, r_cut: float) -> np.ndarray:
    """Mean number of neighbours within r_cut (Å) per frame: 2 x pairs / atoms. (F,)"""
    nl = NeighborList(cutoff=r_cut, full_list=False)
    return np.array([2.0 * len(nl.compute(points=np.asarray(a.positions, float), box=np.asarray(a.cell, float),
                                          periodic=True, quantities="d")[0]) / len(a) for a in frames])


def chain_series(kind: str, folder: Path, shots) -> dict:
    """The exact E_pot per atom (eV) and the frames of a chain after its first fifth, with their strides (steps).
    MD logs the exact E_pot every log row; an exact MC chain logs it every step; a shot-based MC chain logs only
    the measured energy, so its frames are re-evaluated with the exact engine."""
    summary = json.loads((folder / f"{kind}_summary.json").read_text())
    opt = summary["options"]
    frames = read_structures(_trajectory(folder, kind))
    frame_steps = np.array([a.info.get("step", i) for i, a in enumerate(frames)], float)
    frame_stride = float(np.median(np.diff(frame_steps)))
    frames = frames[int(SKIP * len(frames)):]
    rows = read_rows(folder / f"{kind}_log.csv")
    rows = rows[int(SKIP * len(rows)):]
    if kind == "md":
        column = "E_pot_exact_eV" if shots else "E_pot_eV"
        energy, energy_stride = np.array([r[column] for r in rows]) / summary["n_atoms"], float(opt["log_every"])
    elif shots is None:
        energy, energy_stride = np.array([r["energy_eV"] for r in rows]) / summary["n_atoms"], 1.0
    else:
        energy, energy_stride = exact_energies_per_atom(RUN, frames), frame_stride
    return {"summary": summary, "energy": energy, "energy_stride": energy_stride, "frames": frames,
            "frame_stride": frame_stride}


def _costs() -> dict:
    c = json.loads(COSTS.read_text())["cost_ibm_brisbane"]
    md = {int(k.split("_")[2]): v["qpu_seconds"] for k, v in c.items() if k.startswith("md_step_")}
    mc = {int(k.split("_")[2]): v["qpu_seconds"] for k, v in c.items() if k.startswith("mc_step_")}
    return {"md_step": md, "mc_energy": mc}


def _pooled(arrays: list[np.ndarray]) -> np.ndarray:
    """Chains of one group as (C, N), cut to the shortest (the MD logs of a group are of equal length)."""
    n = min(len(a) for a in arrays)
    return np.stack([a[:n] for a in arrays])


def collect() -> dict:
    series = {}
    for label, kind, folders, shots in GROUPS:
        for folder in folders:
            if not (SIM / folder / f"{kind}_summary.json").exists():
                raise SystemExit(f"{SIM / folder}: missing; run `bash runs/simulation/sampling_cost.sh` "
                                 "(and shot_md.sh, mc_study.sh) first")
        series[label] = [chain_series(kind, SIM / folder, shots) for folder in folders]
        print(f"read {label}: {len(folders)} chain(s), {sum(len(c['energy']) for c in series[label])} energies")
    r_cut = COORDINATION_CUTOFF_A
    groups, acf = [], {}
    for label, kind, folders, shots in GROUPS:
        chains = series[label]
        energy = _pooled([c["energy"] for c in chains])
        e = series_stats(energy, chains[0]["energy_stride"])
        cn = series_stats(_pooled([coordination(c["frames"], r_cut) for c in chains]), chains[0]["frame_stride"])
        summaries = [c["summary"] for c in chains]
        groups.append({"group": label, "kind": kind, "chains": [f"runs/simulation/{f}" for f in folders],
                       "shots_per_circuit": shots, "steps_per_chain": summaries[0]["steps"],
                       "delta_A": summaries[0]["options"].get("delta"),
                       "acceptance_ratio": (float(np.mean([s["acceptance_ratio"] for s in summaries]))
                                            if kind == "mc" else None),
                       "exact_epot": {**e.as_dict(), "mean": 1e3 * e.mean, "stderr": 1e3 * e.stderr, "std": 1e3 * e.std,
                                      "unit": "meV/atom"},
                       "coordination": cn.as_dict()})
        if any(label == setting[1] for setting in SETTINGS):   # the plot's curves, up to 10 tau
            stride = chains[0]["energy_stride"]
            n = min(energy.shape[1], int(10 * e.tau_steps / stride) + 2)
            mean_acf = np.mean([function_1d(chain) for chain in energy], axis=0)   # over the group's chains
            lags = np.unique(np.geomspace(1, n - 1, 200).astype(int))          # log-spaced: the plot's axis
            acf[label] = {"lag_steps": (lags * stride).tolist(), "acf": mean_acf[lags].tolist()}
    by_label = {g["group"]: g for g in groups}
    costs = _costs()
    settings = []
    for label, source, shots in SETTINGS:
        g = by_label[source]
        qpu = costs["md_step" if g["kind"] == "md" else "mc_energy"][shots]
        e, cn = g["exact_epot"], g["coordination"]
        settings.append({"setting": label, "tau_from": source, "shots_per_circuit": shots, "qpu_seconds_per_step": qpu,
                         "tau_epot_steps": e["tau_steps"], "tau_coordination_steps": cn["tau_steps"],
                         "qpu_seconds_per_independent_epot": qpu * e["tau_steps"],
                         "qpu_seconds_per_independent_coordination": qpu * cn["tau_steps"],
                         "std_epot_mev_per_atom": e["std"], "trusted_epot": e["trusted"],
                         "trusted_coordination": cn["trusted"],
                         "qpu_hours_for_target_epot": (e["std"] / TARGET_MEV) ** 2 * e["tau_steps"] * qpu / 3600})
    for s in settings:
        for what in ("epot", "coordination"):
            s[f"qpu_time_over_md_2_shots_{what}"] = (s[f"qpu_seconds_per_independent_{what}"]
                                                     / settings[0][f"qpu_seconds_per_independent_{what}"])
    return {"model": str(RUN.relative_to(ROOT)), "temperature_K": 2000.0, "skip_fraction": SKIP,
            "coordination_cutoff_A": r_cut, "target_stderr_mev_per_atom": TARGET_MEV,
            "cost_source": str(COSTS.relative_to(ROOT)) + " cost_ibm_brisbane", "groups": groups, "settings": settings,
            "acf": acf}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for s in result["settings"]:
        a = result["acf"][s["tau_from"]]
        ax1.plot(np.array(a["lag_steps"]) * s["qpu_seconds_per_step"] / 3600, a["acf"], label=s["setting"])
    ax1.axhline(0, color="0.6", lw=0.8)
    ax1.set_xscale("log")
    ax1.set_xlabel("lag in QPU hours on ibm_brisbane (cost model)")
    ax1.set_ylabel("autocorrelation of the exact E_pot")
    ax1.set_title("How fast each sampler forgets, per QPU hour")
    ax1.legend(fontsize=8, loc="lower left")
    labels = [s["setting"] for s in result["settings"]]
    y = np.arange(len(labels))
    for offset, what, name in ((-0.2, "epot", "E_pot"),
                               (0.2, "coordination", f"coordination (r < {result['coordination_cutoff_A']:.2f} Å)")):
        bars = ax2.barh(y + offset, [s[f"qpu_seconds_per_independent_{what}"] / 3600 for s in result["settings"]],
                        0.4, label=name)
        for bar, s in zip(bars, result["settings"]):
            if not s[f"trusted_{what}"]:
                bar.set_hatch("//")
    ax2.plot([], [], " ", label="hatched: rough tau (< 50 independent samples)")
    ax2.set_yticks(y, labels, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xscale("log")
    ax2.set_xlabel("QPU hours per independent sample (tau x cost per step)")
    ax2.legend(fontsize=8)
    save_figure(fig, path, dpi=130)


def summary(result: dict) -> None:
    for s in result["settings"]:
        print(f"{s['setting']:40s} tau E {s['tau_epot_steps']:8.1f} steps, CN {s['tau_coordination_steps']:8.1f}; "
              f"{s['qpu_seconds_per_step']:8.1f} QPU s/step; {s['qpu_seconds_per_independent_epot'] / 3600:8.2f} QPU h "
              f"per independent E_pot ({s['qpu_time_over_md_2_shots_epot']:.3g}x MD 2 shots)")


if __name__ == "__main__":
    main(__doc__, collect, OUT_JSON, lambda result: plot(result, OUT_PNG), summary)
