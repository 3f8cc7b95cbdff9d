"""docs/results.md "Calibrating the noise scale": the fits of runs/noise_calibration/*/ and the re-tuned model's
report, gathered into docs/evidence/noise_calibration.json, with docs/img/noise_calibration.png (reduced chi2 against
the noise scale for every stand-in device; test force and energy RMSE before and after re-tuning for the drift).

Inputs: `bash runs/noise_calibration/run.sh`.
Usage: python docs/evidence/noise_calibration.py [--plot]    (--plot: only redraw the figure from the JSON)
"""

from __future__ import annotations

from pathlib import Path

from _evidence import main, read_json, save_figure

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "noise_calibration"
DEVICES = ["eagle_x0.8", "eagle_x1", "eagle_x1.25", "runtime_fake_brisbane", "thermal", "drifted"]
RETUNED = "eagle_retuned"
DRIFT_RETUNED = "drift_retuned"     # re-tuned on a new snapshot of the per-qubit drifted device
TUNED_REPORT = ROOT / "runs" / "noise_aware" / "l2_hqc_cz_eagle" / "noise_aware.json"
OUT = ROOT / "docs" / "evidence" / "noise_calibration.json"
PLOT = ROOT / "docs" / "img" / "noise_calibration.png"
KEYS = ("backend", "backend_profile", "backend_noise_scale", "noise_model", "fitted_scale", "stderr", "chi2",
        "chi2_at_scale_1", "dof", "reduced_chi2", "p_value", "rms_residual", "rms_shot_noise", "circuits",
        "shots_per_circuit", "total_shots", "measure_seconds", "fit_seconds", "scan")


def _row(report: dict, model: str, scale, backend: str | None = None) -> dict:
    row = next(r for r in report["rows"] if r["model"] == model and r["noise_scale"] == scale
               and backend in (None, r.get("noise_backend")))
    return {k: row[k] for k in ("rmse_e_mev_atom", "rmse_e_offset_free_mev_atom", "rmse_f_ev_a", "checkpoint")}


def gather() -> dict:
    fits = {name: read_json(RUNS / name / "noise_calibration.json") for name in DEVICES}
    fits = {name: {k: fit[k] for k in KEYS} for name, fit in fits.items()}
    report, summary = read_json(RUNS / RETUNED / "noise_aware.json"), read_json(RUNS / RETUNED / "summary.json")
    tuned = read_json(TUNED_REPORT)
    drift = 1.25
    return {"fits": fits,
            "retune": {"run": f"runs/noise_calibration/{RETUNED}", "source": report["source"],
                       "fitted_scale_used": report["noise_scale"], "true_scale": drift, "epochs": summary["epochs"],
                       "train_minutes": summary["train_seconds"] / 60, "hardware": summary["hardware"],
                       "tuned_at_1_on_1": _row(tuned, "noise-aware", 1.0),
                       "tuned_at_1_on_drifted": _row(report, "source", drift),
                       "retuned_on_drifted": _row(report, "noise-aware", drift),
                       "retuned_on_fitted": _row(report, "noise-aware", report["noise_scale"]),
                       "verify": report["verify"]},
            "drift": _drift()}


def _drift() -> dict:
    """The device that drifted per qubit: the old model on it, the model re-tuned at the old snapshot's fitted
    scale on it, and the model re-tuned on the device's new snapshot."""
    report, summary = read_json(RUNS / DRIFT_RETUNED / "noise_aware.json"), read_json(RUNS / DRIFT_RETUNED / "summary.json")
    cross = read_json(RUNS / DRIFT_RETUNED / "cross_evaluation.json")
    device = report["noise_backend"]
    return {"run": f"runs/noise_calibration/{DRIFT_RETUNED}", "device": device, "epochs": summary["epochs"],
            "train_minutes": summary["train_seconds"] / 60,
            "tuned_on_old_snapshot": _row(report, "source", 1.0, device),
            "retuned_at_old_snapshot_scale": {k: cross[k] for k in ("rmse_e_mev_atom", "rmse_e_offset_free_mev_atom",
                                                                    "rmse_f_ev_a", "checkpoint")},
            "retuned_on_new_snapshot": _row(report, "noise-aware", 1.0, device), "verify": report["verify"]}


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.2, 1]})
    for name, fit in result["fits"].items():
        scan = np.array(fit["scan"])
        same = fit["backend"] == fit["noise_model"]
        true = f" (snapshot x{fit['backend_noise_scale']:g})" if same else f" ({fit['backend'].removeprefix('aer-noise:')})"
        line, = ax.semilogy(scan[:, 0], scan[:, 1] / fit["dof"], "-", lw=1,
                            label=f"{name}{true}: {fit['fitted_scale']:.3f} ± {fit['stderr']:.3f}, "
                                  f"reduced $\\chi^2$ {fit['reduced_chi2']:.2f}")
        ax.plot(fit["fitted_scale"], fit["reduced_chi2"], "o", color=line.get_color())
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("noise scale of the Eagle snapshot (fake_brisbane @ ibm_eagle_compact)")
    ax.set_ylabel(r"$\chi^2$ / degrees of freedom")
    ax.set_title("fits to 96 measured circuits x 4000 shots", fontsize=9)
    ax.legend(fontsize=6.5, framealpha=0.9, loc="upper right")
    r = result["retune"]
    d = result["drift"]
    rows = [("tuned at x1,\ndevice x1", r["tuned_at_1_on_1"]), ("tuned at x1,\ndevice x1.25", r["tuned_at_1_on_drifted"]),
            (f"re-tuned at x{r['fitted_scale_used']:g},\ndevice x1.25", r["retuned_on_drifted"]),
            ("tuned at x1,\nper-qubit drifted device", d["tuned_on_old_snapshot"]),
            (f"re-tuned at x{r['fitted_scale_used']:g},\nper-qubit drifted device", d["retuned_at_old_snapshot_scale"]),
            ("re-tuned on its new snapshot,\nper-qubit drifted device", d["retuned_on_new_snapshot"])]
    y = np.arange(len(rows)) + np.array([0, 0, 0, 0.6, 0.6, 0.6])
    bars = bx.barh(y, [row["rmse_f_ev_a"] for _, row in rows], color=["#4c72b0", "#c44e52", "#55a868", "#c44e52", "#dd8452", "#55a868"])
    for bar, (_, row) in zip(bars, rows):
        bx.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {row['rmse_f_ev_a']:.4f} eV/Å, E {row['rmse_e_mev_atom']:.1f} meV/atom", va="center", fontsize=7)
    bx.set_yticks(y, [label for label, _ in rows], fontsize=8)
    bx.invert_yaxis()
    bx.set_xlim(0.25, 0.25 + 1.6 * (max(row["rmse_f_ev_a"] for _, row in rows) - 0.25))
    bx.set_xlabel("test force RMSE vs DFT (eV/Å), raw noisy readouts")
    bx.set_title(f"re-tuning for the drift: {r['epochs']} epochs each", fontsize=9)
    save_figure(fig, PLOT, dpi=130)


def summary(result: dict) -> None:
    for name, fit in result["fits"].items():
        print(f"{name:>22}: {fit['fitted_scale']:.4f} ± {fit['stderr']:.4f}, reduced chi2 {fit['reduced_chi2']:.3f}, "
              f"p {fit['p_value']:.3g}")


if __name__ == "__main__":
    main(__doc__, gather, OUT, plot, summary)
