"""Plots: learning curves and parity plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _read_csv(path) -> dict[str, np.ndarray]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    cols = {}
    for key in rows[0].keys() if rows else []:
        cols[key] = np.array([float(r[key]) if r[key] not in ("", None) else np.nan for r in rows])
    return cols


def plot_learning_curve(metrics_csv: str | Path, out: str | Path) -> None:
    """Train/validation RMSE of E (meV/atom) and F (eV/Å) per epoch, log scale."""
    cols = _read_csv(metrics_csv)
    if not cols:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "rmse_e_mev_atom", "E RMSE (meV/atom)"), (axes[1], "rmse_f_ev_a", "F RMSE (eV/Å)")):
        for split, style in (("train", "-"), ("val", "o-")):
            y = cols.get(f"{split}_{key}")
            if y is not None and np.isfinite(y).any():
                ax.plot(cols["epoch"], y, style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_parity(pred: dict, out: str | Path, title: str = "") -> None:
    """Predicted vs reference energy per atom (eV/atom) and force components (eV/Å)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    e_ref, e_pred = pred["e_ref"] / pred["n_atoms"], pred["e_pred"] / pred["n_atoms"]
    panels = [(axes[0], e_ref, e_pred, "energy (eV/atom)")]
    if "f_pred" in pred:
        panels.append((axes[1], pred["f_ref"].ravel(), pred["f_pred"].ravel(), "force component (eV/Å)"))
    else:
        axes[1].axis("off")
    for ax, ref, prd, label in panels:
        ax.scatter(ref, prd, s=4, alpha=0.5)
        lo, hi = min(ref.min(), prd.min()), max(ref.max(), prd.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
