"""How many shots do shot-based forces need, and what does device noise do to them? (docs/results.md,
"Shot-based forces")

    python docs/evidence/shot_forces.py          # ~17 min on 2 cores; writes the JSON and plot below
    python docs/evidence/shot_forces.py --plot   # redraws the plot from the JSON

Model: runs/l2_hqc_cz_long (HQC-cz, l=2; 192 readout circuits of 8 qubits per 64-atom structure, so
192 x (1 + 16) = 3264 circuits for energy + forces). On the first 3 test frames:

1. Ideal Aer, uniform shots per circuit from 300 to 100000: RMS difference of the measured forces from the
   exact engine's, the predicted standard error, and the z-scores (calibration). A fit err = a / sqrt(S)
   gives the shots per circuit at which shot noise equals the model's own test force RMSE and the DFT
   labels' noise (docs/evidence/cp2k_label_noise.json), and fake_brisbane's cost model turns those into
   QPU time per structure on ibm_brisbane. Optimal allocation is compared with uniform at two counts.
2. Noisy simulation (frame 0, 10000 shots per circuit): the depolarizing model and the fake_brisbane
   (Eagle, on ibm_eagle_compact) and fake_torino (Heron, on ibm_heron_compact) device models, without and
   with mitigation: bias against the exact engine's forces, next to shot noise.

Writes docs/evidence/shot_forces.json and docs/img/shot_forces.png.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from hqc_qiskit.checkpoint import load_model
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.quantum.backends import make_backend
from hqc_qiskit.quantum.shot_forces import estimate_forces, force_problem, force_shots

from _evidence import main, save_figure

ROOT = Path(__file__).resolve().parents[2]
RUN = "runs/l2_hqc_cz_long"
TEST = ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.test.extxyz.gz"
N_FRAMES = 3
SHOTS = [300, 1000, 3000, 10000, 30000, 100000]
OPTIMAL_SHOTS = [1000, 10000]
NOISY_SHOTS = 10000
NOISY = [("aer-noise:depolarizing", "none"), ("aer-noise:depolarizing", "zne"),
         ("aer-noise:fake_brisbane", "none"), ("aer-noise:fake_brisbane", "rem"),
         ("aer-noise:fake_brisbane", "zne+rem"), ("aer-noise:fake_torino", "none"),
         ("aer-noise:fake_torino", "zne+rem")]
OUT_JSON = ROOT / "docs" / "evidence" / "shot_forces.json"
OUT_PNG = ROOT / "docs" / "img" / "shot_forces.png"


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def measure(model, atoms, fp, backend, shots, allocation, seed) -> dict:
    start = time.perf_counter()
    est = estimate_forces(model, atoms, backend, shots, allocation, np.random.default_rng(seed), problem=fp)
    return {"shots_per_circuit": shots, "allocation": allocation, "backend": est.backend,
            "force_rms_error_ev_a": rms(est.forces - est.exact_forces),
            "force_rms_stderr_ev_a": rms(est.forces_stderr), "exact_force_rms_ev_a": rms(est.exact_forces),
            # least-squares factor F ~ lambda F_exact: below 1 where noise flattens the energy surface
            "force_scale_vs_exact": float(np.sum(est.forces * est.exact_forces) / np.sum(est.exact_forces ** 2)),
            "z_rms": rms((est.forces - est.exact_forces) / est.forces_stderr),
            "energy_error_mev_atom": (est.energy - est.exact_energy) / est.n_atoms * 1000,
            "energy_stderr_mev_atom": est.stderr / est.n_atoms * 1000,
            "circuits": est.circuits, "executed_shots": est.shots, "wall_s": time.perf_counter() - start}


def collect() -> dict:
    torch.set_num_threads(2)
    model = load_model(ROOT / RUN).double()
    frames = read_structures(TEST)[:N_FRAMES]
    model_rmse = json.loads((ROOT / RUN / "test_metrics.json").read_text())["rmse_f_ev_a"]
    label_noise = json.loads((ROOT / "docs/evidence/cp2k_label_noise.json").read_text())["label_force_rms_vs_converged_ev_a"]
    aer = make_backend("aer")
    ideal, noisy, problems = [], [], []
    for i, atoms in enumerate(frames):
        start = time.perf_counter()
        fp = force_problem(model, atoms)
        problems.append({"frame": i, "jacobian_wall_s": time.perf_counter() - start})
        for s in SHOTS:
            ideal.append({"frame": i, **measure(model, atoms, fp, aer, s, "uniform", seed=100 * i + s % 97)})
            print(f"frame {i} aer {s:>6} uniform: force RMS error {ideal[-1]['force_rms_error_ev_a']:.4f} eV/Å", flush=True)
        for s in OPTIMAL_SHOTS:
            ideal.append({"frame": i, **measure(model, atoms, fp, aer, s, "optimal", seed=100 * i + s % 89)})
        if i == 0:
            for name, mitigation in NOISY:
                backend = make_backend(name, mitigation=mitigation)
                row = measure(model, atoms, fp, backend, NOISY_SHOTS, "uniform", seed=7)
                noisy.append({"frame": i, "mitigation": mitigation, **row})
                print(f"frame 0 {name} {mitigation}: force RMS error {row['force_rms_error_ev_a']:.4f} eV/Å, "
                      f"scale {row['force_scale_vs_exact']:.3f} ({row['wall_s']:.0f} s)", flush=True)

    uniform = [r for r in ideal if r["allocation"] == "uniform"]
    s = np.array([r["shots_per_circuit"] for r in uniform], float)
    err = np.array([r["force_rms_error_ev_a"] for r in uniform])
    slope, intercept = np.polyfit(np.log(s), np.log(err), 1)
    a = float(np.exp(np.mean(np.log(err * np.sqrt(s)))))          # err = a / sqrt(S), fitted in log space
    fp = force_problem(model, frames[0], uncertainty=False)
    brisbane = make_backend("fake_brisbane")
    targets = {}
    for name, target in (("model_test_rmse", model_rmse), ("dft_label_noise", label_noise)):
        shots = int(np.ceil((a / target) ** 2))
        cost = brisbane.cost(fp.combined, force_shots(fp, shots))
        targets[name] = {"force_rms_ev_a": target, "shots_per_circuit": shots,
                         "shots_per_structure": cost["shots"], "ibm_brisbane_qpu_hours": cost["qpu_seconds"] / 3600}
    optimal_gain = {}
    for shots in OPTIMAL_SHOTS:
        pick = [(r["allocation"], r["force_rms_stderr_ev_a"]) for r in ideal if r["shots_per_circuit"] == shots]
        uni = np.mean([e for al, e in pick if al == "uniform"])
        opt = np.mean([e for al, e in pick if al == "optimal"])
        optimal_gain[str(shots)] = {"variance_ratio_optimal_over_uniform": float((opt / uni) ** 2)}
    report = {
        "model": RUN, "data": str(TEST.relative_to(ROOT)), "frames": N_FRAMES,
        "circuits_per_structure": len(fp.combined), "energy_circuits": fp.base_circuits,
        "model_test_force_rmse_ev_a": model_rmse, "dft_label_force_noise_ev_a": label_noise,
        "fit": {"loglog_slope": float(slope), "loglog_intercept": float(intercept), "a_ev_a_sqrt_shots": a},
        "z_rms_all_ideal": rms([r["z_rms"] for r in ideal]),
        "shots_needed": targets, "optimal_allocation": optimal_gain,
        "problems": problems, "ideal": ideal, "noisy": noisy,
        "hardware": "2-core CPU (this project's CI machine class)",
    }
    return report


def summary(report: dict) -> None:
    print(json.dumps({k: report[k] for k in ("fit", "z_rms_all_ideal", "shots_needed", "optimal_allocation")}, indent=1))


def plot(report: dict) -> None:
    """Left: shot noise of the forces against shots (ideal Aer); right: noisy simulation's error and force scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.1, 1]})
    uniform = [r for r in report["ideal"] if r["allocation"] == "uniform"]
    optimal = [r for r in report["ideal"] if r["allocation"] == "optimal"]
    ax.plot([r["shots_per_circuit"] for r in uniform], [r["force_rms_error_ev_a"] for r in uniform], "o",
            color="C0", alpha=0.7, label=f"Aer (ideal), uniform, {report['frames']} frames")
    ax.plot([r["shots_per_circuit"] for r in optimal], [r["force_rms_error_ev_a"] for r in optimal], "s",
            color="C2", alpha=0.7, label="Aer (ideal), optimal allocation")
    s = np.geomspace(min(r["shots_per_circuit"] for r in uniform), 3e5, 50)
    a = report["fit"]["a_ev_a_sqrt_shots"]
    ax.plot(s, a / np.sqrt(s), "-", color="C0", lw=1, label=f"{a:.2f} eV/Å / sqrt(shots)")
    for value, style, label in ((report["model_test_force_rmse_ev_a"], "--", "model's test force RMSE"),
                                (report["dft_label_force_noise_ev_a"], ":", "DFT label noise")):
        ax.axhline(value, color="k", ls=style, lw=1, label=label)
        bx.axvline(value, color="k", ls=style, lw=1)
    ax.set(xscale="log", yscale="log", xlabel="shots per circuit", ylabel="force RMS difference to exact engine (eV/Å)",
           title=f"shot noise ({report['circuits_per_structure']} circuits per structure)")
    ax.legend(fontsize=7, loc="upper right")

    rows = report["noisy"]
    labels = [f"{r['backend'].removeprefix('aer-noise:')}, {r['mitigation']}" for r in rows]
    y = np.arange(len(rows))[::-1]
    bx.barh(y, [r["force_rms_error_ev_a"] for r in rows], color="C3", alpha=0.75, label="RMS difference")
    bx.errorbar([r["force_rms_stderr_ev_a"] for r in rows], y, fmt="|", color="k", ms=14,
                label="its shot noise (standard error)")
    for yi, r in zip(y, rows):
        bx.text(r["force_rms_error_ev_a"] * 1.03, yi, f"F = {r['force_scale_vs_exact']:.2f} x exact", va="center", fontsize=7)
    bx.set_yticks(y, labels, fontsize=7)
    bx.set(xlabel="force RMS difference to exact engine (eV/Å)", xlim=(0, 0.62),
           title=f"noisy simulation, {rows[0]['shots_per_circuit']} shots per circuit, frame 0" if rows else "")
    bx.legend(fontsize=7, loc="lower right")
    for axis in (ax, bx):
        axis.title.set_fontsize(9)
    fig.suptitle(f"Shot-based forces by parameter shift, {report['model']}", fontsize=10)
    save_figure(fig, OUT_PNG, dpi=130)


if __name__ == "__main__":
    main(__doc__, collect, OUT_JSON, plot, summary)
