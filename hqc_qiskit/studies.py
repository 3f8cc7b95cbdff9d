"""Aggregate study runs into tables and plots.

``python -m hqc_qiskit.studies readouts runs/study_readouts [--threshold 0.5]`` reads every
``<model>_s<seed>/`` run (metrics.csv, summary.json) and writes ``summary.md``, ``summary.json`` and
``val_curves.png`` in that folder: test RMSEs (mean and spread over seeds), epochs to reach a
validation force RMSE threshold, training time; and a per-run table with the final training force
RMSE and the epoch the run left the initial zero-force plateau.

``python -m hqc_qiskit.studies curves RUN [RUN ...] --epochs 20,40,80 [--out curves.png]`` compares any
runs epoch by epoch: validation E and F RMSE at the given epochs (a Markdown table) and both curves.

``python -m hqc_qiskit.studies sizes RUN [RUN ...] [--out sizes.png]`` puts finished runs of different model
sizes side by side: parameters, epochs, training time, test E and F RMSE, and how flat each run's
validation loss was at its end; the plot shows test E and F RMSE against the parameter count.

``python -m hqc_qiskit.studies gradnorms RUN [RUN ...] [--clip 100] [--out grads.png]`` summarises the training
gradient norms that metrics.csv records (before clipping): early and late medians, the largest step and,
given a clip value, how often an epoch's mean norm was above it (clipping acts on most steps) and how many
epochs had at least one step above it (clipping acted at all).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, FuncFormatter, NullFormatter  # noqa: E402
import numpy as np  # noqa: E402

from .plots import _read_csv  # noqa: E402


def epochs_to_reach(cols: dict, key: str, threshold: float) -> float:
    """First epoch whose ``key`` is at or below ``threshold`` (nan if never)."""
    hit = np.nonzero(cols[key] <= threshold)[0]
    return float(cols["epoch"][hit[0]]) if len(hit) else float("nan")


def escape_epoch(cols: dict) -> float:
    """First epoch whose training force RMSE is 10% below the first epoch's: the end of the initial
    zero-force plateau (nan if the run never left it)."""
    f = cols["train_rmse_f_ev_a"]
    hit = np.nonzero(f < 0.9 * f[0])[0]
    return float(cols["epoch"][hit[0]]) if len(hit) else float("nan")


def collect(folder: Path, threshold: float) -> dict:
    runs = defaultdict(list)
    for run in sorted(folder.iterdir()):
        m = re.fullmatch(r"(.+)_s(\d+)", run.name)
        if not (m and run.is_dir() and (run / "summary.json").exists()):
            continue
        summary = json.loads((run / "summary.json").read_text())
        cols = _read_csv(run / "metrics.csv")
        runs[m.group(1)].append({
            "seed": int(m.group(2)), "cols": cols, "test": summary.get("test", {}),
            "epochs": summary["epochs"], "train_seconds": summary["train_seconds"],
            "epochs_to_threshold": epochs_to_reach(cols, "val_rmse_f_ev_a", threshold),
            "best_val_f": float(np.nanmin(cols["val_rmse_f_ev_a"])),
            "epoch_of_best_val_loss": best_epoch(cols),
            "escape_epoch": escape_epoch(cols), "final_train_f": float(cols["train_rmse_f_ev_a"][-1]),
        })
    return runs


def _mean_std(values) -> tuple[float, float]:
    """Mean and std of the finite values (nan, nan when none: e.g. a threshold no seed reached)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v.mean()), float(v.std())) if len(v) else (float("nan"), float("nan"))


def _style_val_axes(axes) -> None:
    """Validation E and F RMSE against epoch, log scale, on the two axes of a learning-curve figure."""
    for ax, ylabel in zip(axes, ("validation E RMSE (meV/atom)", "validation F RMSE (eV/Å)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_yscale("log")
        for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_formatter(FormatStrFormatter("%g"))   # plain numbers: these curves span about one decade
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def readouts_study(folder: str | Path, threshold: float = 0.5) -> dict:
    folder = Path(folder)
    runs = collect(folder, threshold)
    if not runs:
        raise SystemExit(f"{folder}: no finished runs (<model>_s<seed>/summary.json)")
    table = {}
    for model, items in runs.items():
        row = {"seeds": [r["seed"] for r in items]}
        for key in ("rmse_e_mev_atom", "rmse_e_offset_free_mev_atom", "rmse_f_ev_a"):
            row[f"test_{key}"] = _mean_std([r["test"].get(key, np.nan) for r in items])
        row["epochs_to_threshold"] = _mean_std([r["epochs_to_threshold"] for r in items])
        row["epoch_of_best_val_loss"] = _mean_std([r["epoch_of_best_val_loss"] for r in items])
        row["train_minutes"] = _mean_std([r["train_seconds"] / 60 for r in items])
        row["epochs"] = [r["epochs"] for r in items]
        table[model] = row
    lines = [
        f"Validation force-RMSE threshold for 'epochs to reach': {threshold} eV/Å. Mean ± spread (std) over seeds.",
        "",
        "| model | seeds | test E RMSE (meV/atom) | test E RMSE offset-free (meV/atom) | test F RMSE (eV/Å) | epochs to val F ≤ thr | epoch of best val loss | train min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, row in table.items():
        fmt = lambda k, d=2: f"{row[k][0]:.{d}f} ± {row[k][1]:.{d}f}"  # noqa: E731
        lines.append(
            f"| {model} | {len(row['seeds'])} | {fmt('test_rmse_e_mev_atom')} | {fmt('test_rmse_e_offset_free_mev_atom')} | "
            f"{fmt('test_rmse_f_ev_a', 3)} | {fmt('epochs_to_threshold', 1)} | {fmt('epoch_of_best_val_loss', 1)} | {fmt('train_minutes', 1)} |"
        )
    lines += [
        "",
        "Per run ('escape epoch': first epoch whose training force RMSE is 10% below the first epoch's):",
        "",
        "| model | seed | test E RMSE (meV/atom) | offset-free (meV/atom) | test F RMSE (eV/Å) | final train F RMSE (eV/Å) | escape epoch | train min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, items in runs.items():
        for r in items:
            t = r["test"]
            lines.append(
                f"| {model} | {r['seed']} | {t.get('rmse_e_mev_atom', np.nan):.1f} | {t.get('rmse_e_offset_free_mev_atom', np.nan):.1f} | "
                f"{t.get('rmse_f_ev_a', np.nan):.3f} | {r['final_train_f']:.3f} | {r['escape_epoch']:.0f} | {r['train_seconds'] / 60:.1f} |"
            )
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    (folder / "summary.json").write_text(json.dumps({"threshold_f_ev_a": threshold, "models": table}, indent=2))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, (model, items) in enumerate(runs.items()):
        color = f"C{k}"
        for j, r in enumerate(items):
            label = model if j == 0 else None
            axes[0].plot(r["cols"]["epoch"], r["cols"]["val_rmse_e_mev_atom"], color=color, alpha=0.8, label=label, ls="-" if j == 0 else "--")
            axes[1].plot(r["cols"]["epoch"], r["cols"]["val_rmse_f_ev_a"], color=color, alpha=0.8, label=label, ls="-" if j == 0 else "--")
    axes[1].axhline(threshold, color="k", lw=0.8, ls=":")
    _style_val_axes(axes)
    fig.suptitle("CMLP vs HQC readouts (solid: seed 0, dashed: seed 1)")
    fig.tight_layout()
    fig.savefig(folder / "val_curves.png", dpi=120)
    plt.close(fig)
    print("\n".join(lines))
    return table


def compare_curves(runs: list[str | Path], epochs: list[int], out: str | Path | None = None) -> str:
    """Validation E (meV/atom) and F (eV/Å) RMSE of each run at ``epochs`` (Markdown table, returned and
    printed; '-' where a run has no such epoch) and, if ``out``, both curves of every run in one figure."""
    curves = {}
    for run in map(Path, runs):
        curves[run.name] = _run_metrics(run)
    lines = ["| run | " + " | ".join(f"epoch {e}: val E, F" for e in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for name, cols in curves.items():
        cells = []
        for e in epochs:
            row = np.nonzero(cols["epoch"] == e)[0]
            cells.append("-" if not len(row) else
                         f"{cols['val_rmse_e_mev_atom'][row[0]]:.2f}, {cols['val_rmse_f_ev_a'][row[0]]:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if out is not None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for name, cols in curves.items():
            axes[0].plot(cols["epoch"], cols["val_rmse_e_mev_atom"], label=name)
            axes[1].plot(cols["epoch"], cols["val_rmse_f_ev_a"], label=name)
        _style_val_axes(axes)
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
    return table


def _run_metrics(run: Path) -> dict:
    """The run's metrics.csv as columns; a clear exit if the folder is not a run."""
    if not (run / "metrics.csv").exists():
        raise SystemExit(f"{run}: no metrics.csv")
    return _read_csv(run / "metrics.csv")


def _test_metrics(run: Path, summary: dict) -> dict:
    """The run's test metrics: the ``test`` block of its ``summary`` (training rewrites summary.json at the end
    of every invocation, so it follows a resumed run) or, for runs without one, ``test_metrics.json``
    (``hqc-qiskit evaluate``)."""
    if "test" in summary:
        return summary["test"]
    if (run / "test_metrics.json").exists():
        return json.loads((run / "test_metrics.json").read_text())
    raise SystemExit(f"{run}: no test metrics (summary.json with 'test', or test_metrics.json); "
                     f"run hqc-qiskit evaluate {run} --data TEST --json {run}/test_metrics.json")


def _n_parameters(run: Path, summary: dict) -> int:
    if "n_parameters" in summary:
        return int(summary["n_parameters"])
    from .checkpoint import load_model   # older runs' summaries lack the count: read it off the model

    return sum(p.numel() for p in load_model(run).parameters())


def best_epoch(cols: dict) -> float:
    """The epoch of the lowest validation loss (the one best_model.pt holds)."""
    return float(cols["epoch"][np.nanargmin(cols["val_loss"])])


def largest_training_rise(cols: dict, key: str = "train_rmse_f_ev_a") -> float:
    """Largest relative rise of a training metric from one epoch to the next (0 if it never rose): a
    training spike, e.g. 0.42 when the force RMSE went from 0.2785 to 0.3954 eV/Å (`l2_hqc_cz_long`, epoch 55 to 56).
    Training RMSEs are running averages over the epoch, so a healthy run rises by at most a few percent."""
    values = np.asarray(cols[key], dtype=float)
    rises = values[1:] / values[:-1] - 1.0
    rises = rises[np.isfinite(rises)]
    return float(max(0.0, rises.max())) if len(rises) else float("nan")   # nan: fewer than two logged epochs


def last_improvement(cols: dict, window: int = 20) -> float:
    """Relative fall of the best validation loss over the last ``window`` epochs (0: no better epoch in
    them; nan if the run is not longer than the window): how flat a run was when it stopped."""
    loss = np.minimum.accumulate(cols["val_loss"])
    if len(loss) <= window:
        return float("nan")
    return float((loss[-window - 1] - loss[-1]) / loss[-window - 1])


def size_accuracy(runs: list[str | Path], out: str | Path | None = None) -> list[dict]:
    """One row per run (sorted by parameter count): parameters, epochs, training hours, median seconds per
    epoch, test E RMSE (meV/atom) and F RMSE (eV/Å), :func:`last_improvement` of the validation loss,
    :func:`best_epoch` and :func:`largest_training_rise` of the training force RMSE.
    Prints a Markdown table; if ``out``, plots test E and F RMSE against parameters."""
    rows = []
    for run in map(Path, runs):
        cols = _run_metrics(run)
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        test = _test_metrics(run, summary)
        rows.append({"run": run.name, "parameters": _n_parameters(run, summary), "epochs": int(cols["epoch"][-1]),
                     "train_hours": float(cols["wall_seconds"][-1]) / 3600,
                     "seconds_per_epoch": float(np.median(cols["epoch_seconds"])),
                     "test_rmse_e_mev_atom": float(test["rmse_e_mev_atom"]), "test_rmse_f_ev_a": float(test["rmse_f_ev_a"]),
                     "val_loss_fall_last_20_epochs": last_improvement(cols), "best_epoch": best_epoch(cols),
                     "largest_train_f_rise": largest_training_rise(cols)})
    rows.sort(key=lambda r: r["parameters"])
    lines = ["| run | parameters | epochs | training (h) | s per epoch | test E RMSE (meV/atom) | test F RMSE (eV/Å) "
             "| best val loss: fall over the last 20 epochs | best epoch | largest rise of train F RMSE between epochs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['parameters']:,} | {r['epochs']} | {r['train_hours']:.2f} | {r['seconds_per_epoch']:.0f} "
                     f"| {r['test_rmse_e_mev_atom']:.2f} | {r['test_rmse_f_ev_a']:.3f} | {100 * r['val_loss_fall_last_20_epochs']:.2f}% "
                     f"| {r['best_epoch']:.0f} | {100 * r['largest_train_f_rise']:.1f}% |")
    print("\n".join(lines))
    if out is not None:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
        for ax, key, ylabel in zip(axes, ("test_rmse_e_mev_atom", "test_rmse_f_ev_a"),
                                   ("test E RMSE (meV/atom)", "test F RMSE (eV/Å)")):
            x = [r["parameters"] for r in rows]
            # one marker per run, named in the legend (labels beside the points overlapped once runs of one size
            # and several seeds came together); no line: the runs are different models, not one curve
            for k, r in enumerate(rows):
                ax.plot(r["parameters"], r[key], "os^vDP*Xhp"[k % 10], color=f"C{k % 10}", markersize=7,
                        label=f"{r['run']}: {r['epochs']} ep, {r['train_hours']:.1f} h")
            ax.set_xscale("log")
            ax.set_xlim(min(x) / 1.3, max(x) * 1.3)
            ax.set_xticks([t for t in (1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6)
                           if min(x) / 1.3 <= t <= max(x) * 1.3])
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("parameters")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
    return rows


def gradient_norms(runs: list[str | Path], clip: float | None = None, window: int = 20,
                   out: str | Path | None = None) -> list[dict]:
    """Training gradient norms of runs whose metrics.csv records them (``grad_norm_mean``/``grad_norm_max``,
    the global L2 norm of each step's gradient before clipping). One row per run: the median of the per-epoch
    means over the first and the last ``window`` epochs, the largest step norm and its epoch, and, with
    ``clip``, the share of epochs whose mean norm is above it (where clipping at ``clip`` acts on most steps) and
    the number of epochs with at least one step above it (``grad_norm_max`` > ``clip``: clipping acted there).
    Prints a Markdown table; if ``out``, plots the per-epoch mean (line) and max (dots) of every run."""
    rows, curves = [], {}
    for run in map(Path, runs):
        cols = _run_metrics(run)
        if "grad_norm_mean" not in cols or not np.isfinite(cols["grad_norm_mean"]).any():
            raise SystemExit(f"{run}: metrics.csv has no gradient norms (runs started before session 18 lack them)")
        ok = np.isfinite(cols["grad_norm_mean"])
        epoch, mean, peak = cols["epoch"][ok], cols["grad_norm_mean"][ok], cols["grad_norm_max"][ok]
        curves[run.name] = (epoch, mean, peak)
        rows.append({"run": run.name, "epochs": int(epoch[-1]), "median_mean_first": float(np.median(mean[:window])),
                     "median_mean_last": float(np.median(mean[-window:])), "max": float(peak.max()),
                     "epoch_of_max": int(epoch[np.argmax(peak)]),
                     "share_of_epochs_mean_above_clip": float(np.mean(mean > clip)) if clip else float("nan"),
                     "epochs_recorded": len(epoch),
                     "epochs_with_step_above_clip": int(np.sum(peak > clip)) if clip else None})
    head = (f"| run | epochs | median of epoch means, epochs 1-{window} | median of epoch means, last {window} epochs "
            f"| largest step norm (epoch) |"
            + (f" epochs with mean norm > {clip:g} | epochs with a step > {clip:g} |" if clip else ""))
    lines = [head, "|---" * (5 + 2 * bool(clip)) + "|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['epochs']} | {r['median_mean_first']:.1f} | {r['median_mean_last']:.1f} "
                     f"| {r['max']:.1f} ({r['epoch_of_max']}) |"
                     + (f" {100 * r['share_of_epochs_mean_above_clip']:.0f}% | {r['epochs_with_step_above_clip']} "
                        f"of {r['epochs_recorded']} |" if clip else ""))
    print("\n".join(lines))
    if out is not None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for k, (name, (epoch, mean, peak)) in enumerate(curves.items()):
            ax.plot(epoch, mean, color=f"C{k % 10}", label=f"{name}: mean")
            ax.plot(epoch, peak, ".", color=f"C{k % 10}", ms=3, alpha=0.6, label=f"{name}: max")
        if clip:
            ax.axhline(clip, color="k", ls="--", lw=1, label=f"clip {clip:g}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("gradient norm per step, before clipping")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
    return rows


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hqc_qiskit.studies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    readouts = commands.add_parser("readouts", help="aggregate <model>_s<seed>/ runs of a readout study")
    readouts.add_argument("folder")
    readouts.add_argument("--threshold", type=float, default=0.5, help="validation F RMSE (eV/Å) for 'epochs to reach'")
    curves = commands.add_parser("curves", help="compare runs epoch by epoch")
    curves.add_argument("runs", nargs="+")
    curves.add_argument("--epochs", required=True, type=lambda t: [int(e) for e in t.split(",")],
                        help="comma-separated epochs for the table")
    curves.add_argument("--out", default=None, help="PNG of both curves of every run")
    sizes = commands.add_parser("sizes", help="test accuracy of finished runs against their parameter count")
    sizes.add_argument("runs", nargs="+")
    sizes.add_argument("--out", default=None, help="PNG of test E and F RMSE against parameters")
    grads = commands.add_parser("gradnorms", help="training gradient norms per epoch (runs since session 18)")
    grads.add_argument("runs", nargs="+")
    grads.add_argument("--clip", type=float, default=None, help="a grad_clip_norm to compare with")
    grads.add_argument("--window", type=int, default=20, help="epochs at the start and at the end to summarise")
    grads.add_argument("--out", default=None, help="PNG of the per-epoch mean and max of every run")
    a = parser.parse_args(argv)
    if a.command == "readouts":
        readouts_study(a.folder, a.threshold)
    elif a.command == "curves":
        compare_curves(a.runs, a.epochs, a.out)
    elif a.command == "gradnorms":
        gradient_norms(a.runs, a.clip, a.window, a.out)
    else:
        size_accuracy(a.runs, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
