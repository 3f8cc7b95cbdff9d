"""docs/results.md "Training the circuits through the noise": noise-aware fine-tuning with the circuit weights
trained as well (`--train-circuits`) against the same fine-tuning with them kept (session 29's runs), on the
Eagle and Heron snapshots, gathered into docs/evidence/noise_aware_circuits.json, with
docs/img/noise_aware_circuits.png (validation force RMSE per epoch, both ways, both devices).

Inputs: `bash runs/noise_aware/run.sh` (kept circuits), `bash runs/noise_aware/run.sh circuits` (trained circuits),
`bash runs/noise_aware/shot_noise.sh` (shot noise of both Eagle models).
Usage: python docs/evidence/noise_aware_circuits.py [--plot]    (--plot: only redraw the figure from the JSON)
"""

from __future__ import annotations

import csv
from pathlib import Path

from _evidence import main, read_json, save_figure

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "noise_aware"
DEVICES = {"eagle": "l2_hqc_cz_eagle", "heron": "l2_hqc_cz_heron"}
SOURCE = ROOT / "runs" / "l2_hqc_cz_long"
OUT = ROOT / "docs" / "evidence" / "noise_aware_circuits.json"
PLOT = ROOT / "docs" / "img" / "noise_aware_circuits.png"
ROW_KEYS = ("model", "readouts", "noise_scale", "rmse_e_mev_atom", "rmse_e_offset_free_mev_atom", "rmse_f_ev_a",
            "checkpoint")


def _weight_change(run: Path) -> float:
    """Largest |change| of a circuit weight (rad) from the source's, over the three readouts."""
    import torch

    from hqc_qiskit.checkpoint import load_model

    source, tuned = load_model(SOURCE), load_model(run)
    return max(float((a.circuit.weight.double() - b.circuit.weight.double()).abs().max())
               for a, b in zip(source.readouts, tuned.readouts) if isinstance(a.circuit.weight, torch.Tensor))


def _validation(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{"epoch": int(r["epoch"]), "val_rmse_f_ev_a": float(r["val_rmse_f_ev_a"]),
                 "val_rmse_e_mev_atom": float(r["val_rmse_e_mev_atom"])} for r in csv.DictReader(f)]


def _run(run: Path) -> dict:
    report, summary = read_json(run / "noise_aware.json"), read_json(run / "summary.json")
    curve = _validation(run)
    return {"run": str(run.relative_to(ROOT)), "noise_backend": report["noise_backend"], "epochs": summary["epochs"],
            "train_minutes": summary["train_seconds"] / 60, "torch_threads": summary["hardware"]["torch_threads"],
            "rows": [{k: r[k] for k in ROW_KEYS} for r in report["rows"]], "verify": report["verify"],
            "max_circuit_weight_change_rad": _weight_change(run), "validation": curve}


def _shot_noise(name: str) -> dict:
    """First test frame, 10,000 shots per circuit on the Eagle snapshot (runs/noise_aware/shot_noise.sh)."""
    import numpy as np

    d = read_json(RUNS / "shot_noise" / f"{name}.json")
    forces, exact = np.array(d["forces"]), np.array(d["exact_forces"])
    return {"json": f"runs/noise_aware/shot_noise/{name}.json", "shots_per_circuit": d["shots"] / d["circuits"],
            "energy_stderr_ev": d["stderr"], "median_force_stderr_ev_a": float(np.median(d["forces_stderr"])),
            "rms_force_difference_to_noisy_readouts_ev_a": float(np.sqrt(np.mean((forces - exact) ** 2)))}


def _decode_norms(run: Path) -> list[float]:
    """|decode weight| of each readout: how much the model amplifies the readouts' <Z> (and their shot noise)."""
    from hqc_qiskit.checkpoint import load_model

    return [float(r.decode.weight.norm()) for r in load_model(run).readouts]


def gather() -> dict:
    out = {device: {"kept": _run(RUNS / run), "trained": _run(RUNS / f"{run}_circuits")}
           for device, run in DEVICES.items()}
    out["decode_weight_norms"] = {"source": _decode_norms(SOURCE),
                                  **{f"{device}_{key}": _decode_norms(ROOT / out[device][key]["run"])
                                     for device in DEVICES for key in ("kept", "trained")}}
    control = RUNS / "l2_hqc_cz_exact_control"
    out["control"] = {"run": str(control.relative_to(ROOT)), "test": read_json(control / "summary.json")["test"],
                      "validation": _validation(control)}
    out["shot_noise_eagle"] = {"kept": _shot_noise("l2_hqc_cz_eagle"), "trained": _shot_noise("l2_hqc_cz_eagle_circuits")}
    return out


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, device in zip(axes, DEVICES):
        d = result[device]
        for key, style, label in (("kept", "C3-o", "circuit weights kept"), ("trained", "C2-s", "circuit weights trained")):
            curve = d[key]["validation"]
            test = next(r for r in d[key]["rows"] if r["model"] == "noise-aware" and r["noise_scale"] == 1.0)
            ax.plot([c["epoch"] for c in curve], [c["val_rmse_f_ev_a"] for c in curve], style, ms=3,
                    label=f"{label} (test {test['rmse_f_ev_a']:.4f})")
        curve = result["control"]["validation"]
        ax.plot([c["epoch"] for c in curve], [c["val_rmse_f_ev_a"] for c in curve], "--", color="0.5",
                label=f"control: exact readouts (test {result['control']['test']['rmse_f_ev_a']:.4f})")
        ax.set_title(f"{device}: {d['kept']['noise_backend'].removeprefix('aer-noise:')}", fontsize=9)
        ax.set_xlabel("fine-tuning epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation force RMSE (eV/Å)")
    save_figure(fig, PLOT, dpi=130)


if __name__ == "__main__":
    main(__doc__, gather, OUT, plot)
