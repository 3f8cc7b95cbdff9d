"""docs/results.md "Noise-aware fine-tuning": the two device runs' reports, the exact-readout control and the MD
runs at 3000 K, gathered into docs/evidence/noise_aware.json, with docs/img/noise_aware.png (test force and
energy RMSE per device; g(r) of the MD runs against the DFT frames).

Inputs: `bash runs/noise_aware/run.sh`, `bash runs/noise_aware/control.sh`, `bash runs/noise_aware/md.sh`.
Usage: python docs/evidence/noise_aware.py [--plot]    (--plot: only redraw the figure from the JSON)
"""

from __future__ import annotations

from pathlib import Path

from _evidence import main, read_json, save_figure

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "noise_aware"
DEVICES = {"eagle": "l2_hqc_cz_eagle", "heron": "l2_hqc_cz_heron"}
CONTROL = "l2_hqc_cz_exact_control"
MD_RUNS = ["source_exact", "source_exact_seed1", "source_eagle", "source_eagle_seed1", "tuned_eagle", "tuned_eagle_seed1"]
OUT = ROOT / "docs" / "evidence" / "noise_aware.json"
PLOT = ROOT / "docs" / "img" / "noise_aware.png"


def gather() -> dict:
    devices = {}
    for device, run in DEVICES.items():
        report, summary = read_json(RUNS / run / "noise_aware.json"), read_json(RUNS / run / "summary.json")
        devices[device] = {"run": f"runs/noise_aware/{run}", "noise_backend": report["noise_backend"],
                           "epochs": summary["epochs"], "train_minutes": summary["train_seconds"] / 60,
                           "rows": [{k: r[k] for k in ("model", "readouts", "noise_scale", "rmse_e_mev_atom",
                                                       "rmse_e_offset_free_mev_atom", "rmse_f_ev_a", "checkpoint")}
                                    for r in report["rows"]],
                           "verify": report["verify"]}
    control = read_json(RUNS / CONTROL / "summary.json")
    md = []
    for name in MD_RUNS:
        summary, rdf = read_json(RUNS / "md" / name / "md_summary.json"), read_json(RUNS / "md" / name / "rdf_vs_dft.json")
        md.append({"run": name, "seed": summary["options"]["seed"], "steps": summary["steps"], "time_ps": summary["time_ps"],
                   "stable": summary["stable"], "unstable_reason": summary.get("unstable_reason"),
                   "mean_T_K": summary["mean_T_K"], "rdf_frames": rdf["frames"],
                   "first_peak_r": rdf["comparison"]["first_peak_r"], "first_peak_g": rdf["comparison"]["first_peak_g"],
                   "integrated_sq_diff": rdf["comparison"]["integrated_sq_diff"]})
    return {"devices": devices,
            "control": {"run": f"runs/noise_aware/{CONTROL}", "epochs": control["epochs"],
                        "train_minutes": control["train_seconds"] / 60, "test": control["test"]},
            "md": md}


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    labels, values, colors = ["source, exact", "control: +25 epochs, exact"], [], ["#4c72b0", "#8da0cb"]
    source = result["devices"]["eagle"]["rows"][0]
    values += [source["rmse_f_ev_a"], result["control"]["test"]["rmse_f_ev_a"]]
    for device, d in result["devices"].items():
        rows = {(r["model"], r["noise_scale"]): r for r in d["rows"]}
        for model, scale, color in (("source", 1.0, "#c44e52"), ("noise-aware", 1.0, "#55a868"),
                                    ("noise-aware", 0.8, "#9fd3a8"), ("noise-aware", 1.25, "#9fd3a8")):
            labels.append(f"{device}: {model}, noisy x{scale:g}")
            values.append(rows[(model, scale)]["rmse_f_ev_a"])
            colors.append(color)
    ax.barh(range(len(values)), values, color=colors)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("test force RMSE against DFT (eV/Å)")
    ax = axes[1]
    ref = read_json(RUNS / "md" / "tuned_eagle" / "rdf_vs_dft.json")["reference_rdf"]
    ax.plot(ref["r"], ref["g"], "k-", lw=2, label="DFT frames (3000 K)")
    for name, style in (("source_exact", "C0-"), ("tuned_eagle", "C2--"), ("source_eagle", "C3:")):
        row = next(m for m in result["md"] if m["run"] == name)
        g = read_json(RUNS / "md" / name / "rdf_vs_dft.json")["rdf"]
        tag = f"{row['time_ps']:.2f} ps" + ("" if row["stable"] else ", collapsed")
        ax.plot(g["r"], g["g"], style, label=f"{name} ({tag})")
    ax.set_xlim(1.5, 6)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.legend(fontsize=7)
    ax.set_title("NVT 3000 K, noisy readouts in the many-shot limit", fontsize=9)
    save_figure(fig, PLOT, dpi=130)


if __name__ == "__main__":
    main(__doc__, gather, OUT, plot)
