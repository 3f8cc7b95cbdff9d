"""Plots: learning curves, parity plots, transpile and noise/shot studies (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | Path, dpi: int) -> None:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _read_csv(path) -> dict[str, np.ndarray]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    cols = {}
    for key in rows[0].keys() if rows else []:
        cols[key] = np.array([float(r[key]) if r[key] not in ("", None) else np.nan for r in rows])
    return cols


def plot_learning_curve(metrics_csv: str | Path, out: str | Path) -> None:
    """Train/validation RMSE of E (meV/atom) and F (eV/Å) per epoch, log scale; a third panel with the
    gradient norm per step (mean and max over each epoch, before clipping) when metrics.csv has it."""
    cols = _read_csv(metrics_csv)
    if not cols:
        return
    has_grad = np.isfinite(cols.get("grad_norm_max", np.array([np.nan]))).any()
    fig, axes = plt.subplots(1, 3 if has_grad else 2, figsize=(15 if has_grad else 10, 4))
    for ax, key, label in ((axes[0], "rmse_e_mev_atom", "E RMSE (meV/atom)"), (axes[1], "rmse_f_ev_a", "F RMSE (eV/Å)")):
        for split, style in (("train", "-"), ("val", "o-")):
            y = cols.get(f"{split}_{key}")
            if y is not None and np.isfinite(y).any():
                ax.plot(cols["epoch"], y, style, ms=3, label=split)
        ax.set_ylabel(label)
    if has_grad:
        axes[2].plot(cols["epoch"], cols["grad_norm_mean"], "-", label="mean over the epoch's steps")
        axes[2].plot(cols["epoch"], cols["grad_norm_max"], "-", alpha=0.7, label="max over the epoch's steps")
        axes[2].set_ylabel("gradient norm before clipping")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, out, dpi=120)


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
    _save(fig, out, dpi=120)


def plot_transpile(rows: list[dict], path: str | Path) -> None:
    """Bars of two-qubit gates, depth and estimated success probability per ansatz (``transpile`` rows)."""
    keys = [("two_qubit_gates", "two-qubit gates"), ("depth", "depth"), ("success_probability", "est. success probability")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    names = [r["ansatz"] for r in rows]
    for ax, (key, label) in zip(axes, keys):
        ax.bar(names, [r[key] or 0 for r in rows], color="tab:blue")
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.suptitle(f"profile {rows[0]['profile']}", fontsize=10)
    _save(fig, path, dpi=130)


def plot_noise_study(rows: list[dict], path: str | Path) -> None:
    profiles = sorted({r["profile"] for r in rows})
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.5 * len(profiles), 3.6), squeeze=False)
    for ax, profile in zip(axes[0], profiles):
        for mitigation in sorted({r["mitigation"] for r in rows}):
            sel = sorted((r for r in rows if r["profile"] == profile and r["mitigation"] == mitigation), key=lambda r: r["scale"])
            ax.plot([r["scale"] for r in sel], [r["rmse_mev_per_atom"] for r in sel], "o-", label=mitigation)
        ax.set_title(f"{rows[0]['ansatz']} / {rows[0]['noise']} / {profile}", fontsize=9)
        ax.set_xlabel("noise scale")
        ax.set_ylabel("energy RMSE vs exact (meV/atom)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    _save(fig, path, dpi=130)


def plot_noise_aware(result: dict, path: str | Path) -> None:
    """Test energy and force RMSE against DFT of every row of a noise-aware report (``noise_aware.py``)."""
    from .noise_aware import readouts_label

    rows = result["rows"]
    labels = [f"{r['model']}\n{readouts_label(r, result['noise_backend']).replace(' (', chr(10) + '(')}"
              + (f" x{r['noise_scale']:g}" if r["noise_scale"] is not None else "") for r in rows]
    colors = ["#4c72b0" if r["readouts"] == "exact" else "#c44e52" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, unit in ((axes[0], "rmse_e_mev_atom", "energy RMSE (meV/atom)"), (axes[1], "rmse_f_ev_a", "force RMSE (eV/Å)")):
        values = [r[key] for r in rows]
        ax.bar(range(len(rows)), values, color=colors)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylabel(unit)
        ax.set_yscale("log")
    fig.suptitle(f"test set vs DFT; noisy readouts: {result['noise_backend']} x{result['noise_scale']:g}", fontsize=9)
    _save(fig, path, dpi=130)


def plot_noise_calibration(result: dict, path: str | Path) -> None:
    """A noise-scale fit (``noise_calibration.py``): chi2 vs scale with the fit, and the measured drift from the
    snapshot (measured - snapshot at scale 1) against the fitted one (snapshot at the fit - at scale 1)."""
    scan = np.array(result["scan"])
    s, err = result["fitted_scale"], result["stderr"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    ax = axes[0]
    ax.semilogy(scan[:, 0], scan[:, 1], "o-", ms=3, label="scan")
    ax.axvspan(s - err, s + err, color="#c44e52", alpha=0.3, lw=0)
    ax.axvline(s, color="#c44e52", lw=1, label=f"fit {s:.3f} ± {err:.3f}")
    ax.axhline(result["dof"], color="grey", lw=0.8, ls=":", label=f"degrees of freedom ({result['dof']})")
    ax.set_xlabel("noise scale (x the snapshot's error rates)")
    ax.set_ylabel(r"$\chi^2$")
    ax.set_title(f"reduced $\\chi^2$ {result['reduced_chi2']:.2f}, p = {result['p_value']:.2g}", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    at_one = np.array(result["predicted_at_scale_1"])
    measured, fitted = np.array(result["measured"]) - at_one, np.array(result["predicted"]) - at_one
    ax.plot(fitted.ravel(), measured.ravel(), ".", ms=2, alpha=0.5)
    lim = float(np.max(np.abs(np.concatenate([measured.ravel(), fitted.ravel()])))) or 1.0
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.6)
    ax.locator_params(nbins=5)
    ax.set_xlabel(r"fitted drift: $\langle Z\rangle_{fit} - \langle Z\rangle_{x1}$")
    ax.set_ylabel(r"measured $-\ \langle Z\rangle_{x1}$")
    ax.set_title(f"{result['circuits']} circuits x {result['shots_per_circuit']} shots; "
                 f"shot noise {result['rms_shot_noise']:.3f}", fontsize=9)
    device = result["backend"] + ("" if result.get("backend_noise_scale") is None else f" x{result['backend_noise_scale']:g}")
    fig.suptitle(f"{device} against {result['noise_model']}", fontsize=9)
    _save(fig, path, dpi=130)


def plot_shots_study(rows: list[dict], path: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for allocation in sorted({r["allocation"] for r in rows}):
        sel = sorted((r for r in rows if r["allocation"] == allocation), key=lambda r: r["shots_per_circuit"])
        s = np.array([r["shots_per_circuit"] for r in sel])
        ax.loglog(s, [r["rmse_mev_per_atom"] for r in sel], "o-", label=f"{allocation}: measured RMSE")
        ax.loglog(s, [r["predicted_stderr_mev_per_atom"] for r in sel], "x:", label=f"{allocation}: predicted s.e.")
    sel = sorted(rows, key=lambda r: r["shots_per_circuit"])
    s0, e0 = sel[0]["shots_per_circuit"], sel[0]["predicted_stderr_mev_per_atom"]
    s = np.array([r["shots_per_circuit"] for r in sel], float)
    ax.loglog(s, e0 * np.sqrt(s0 / s), "k--", lw=0.8, label=r"$\propto 1/\sqrt{S}$")
    ax.set_xlabel("shots per circuit S")
    ax.set_ylabel("energy error (meV/atom)")
    ax.legend(fontsize=7)
    _save(fig, path, dpi=130)


def plot_rdf(curves: dict, path: str | Path, title: str = "") -> None:
    """g(r) curves {label: RDF} with block-averaged error bands; the first label is drawn on top."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (label, rdf) in enumerate(reversed(list(curves.items()))):
        line, = ax.plot(rdf.r, rdf.g, label=label, lw=2.0 if k == len(curves) - 1 else 1.2)
        if np.isfinite(rdf.err).any():
            ax.fill_between(rdf.r, rdf.g - rdf.err, rdf.g + rdf.err, color=line.get_color(), alpha=0.25, lw=0)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path, 150)


def plot_md_log(rows: list[dict], path: str | Path, n_atoms: int) -> None:
    """Temperature and energies per atom (meV/atom, relative to the first row) vs time (ps); for NPT also
    density (g/cm^3) and pressure (GPa); with a committee its largest force deviation (eV/Å)."""
    t = np.array([r["time_fs"] for r in rows]) / 1000.0
    npt, watched = "density_g_cm3" in rows[0], "max_force_dev_eV_A" in rows[0]
    n_panels = 2 + npt + watched
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 3.6))
    a, b = axes[:2]
    if watched:
        w = axes[-1]
        w.plot(t, [r["max_force_dev_eV_A"] for r in rows], color="C3")
        w.set_xlabel("time (ps)")
        w.set_ylabel("committee: max force deviation (eV/Å)")
        w.set_ylim(bottom=0)
    if npt:
        c = axes[2]
        c.plot(t, [r["density_g_cm3"] for r in rows], color="C0")
        c.set_xlabel("time (ps)")
        c.set_ylabel("density (g/cm³)", color="C0")
        p = c.twinx()
        p.plot(t, [r["P_GPa"] for r in rows], color="C1", lw=0.8)
        p.set_ylabel("pressure (GPa)", color="C1")
    a.plot(t, [r["T_K"] for r in rows])
    a.set_xlabel("time (ps)")
    a.set_ylabel("T (K)")
    for key in ("E_pot_eV", "E_tot_eV", "E_conserved_eV"):
        e = np.array([r[key] for r in rows])
        if np.isfinite(e).all():
            b.plot(t, (e - e[0]) / n_atoms * 1000.0, label=key.removesuffix("_eV"))
    b.set_xlabel("time (ps)")
    b.set_ylabel("energy - initial (meV/atom)")
    b.legend(fontsize=8)
    _save(fig, path, 120)


def plot_mc_log(rows: list[dict], path: str | Path, n_atoms: int) -> None:
    """Estimated energy per atom with its standard error, running acceptance ratio, and delta vs step; for an
    isobaric chain (a log with density_g_cm3) also the density."""
    step = np.array([r["step"] for r in rows])
    e = np.array([r["energy_eV"] for r in rows]) / n_atoms * 1000.0
    s = np.array([r["sigma_eV"] for r in rows]) / n_atoms * 1000.0
    isobaric = bool(rows) and "density_g_cm3" in rows[0]
    fig, axes = plt.subplots(1, 3 if isobaric else 2, figsize=(15 if isobaric else 10, 3.6))
    a, b = axes[:2]
    if isobaric:
        axes[2].plot(step, [r["density_g_cm3"] for r in rows], lw=0.8)
        axes[2].set_xlabel("MC step")
        axes[2].set_ylabel("density (g/cm³)")
        b.plot(step, [r["max_dlnv"] / rows[0]["max_dlnv"] for r in rows], label="max dln V / initial")
    a.plot(step, e - e[0], lw=0.8)
    a.fill_between(step, e - e[0] - s, e - e[0] + s, alpha=0.3, lw=0)
    a.set_xlabel("MC step")
    a.set_ylabel("E - E(0) (meV/atom)")
    b.plot(step, [r["acceptance_ratio"] for r in rows], label="acceptance ratio")
    b.plot(step, [r["delta_A"] / rows[0]["delta_A"] for r in rows], label="delta / initial delta")
    b.set_xlabel("MC step")
    b.legend(fontsize=8)
    _save(fig, path, 120)


def plot_mc_study(result: dict, path: str | Path) -> None:
    """g(r) distance to the exact-energy chain, and mean exact E_pot of the samples, vs shots: plain vs penalty."""
    rows = result["rows"]
    exact = next(r for r in rows if r["label"] == "exact")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for rule, marker in (("plain", "o-"), ("penalty", "s-")):
        sel = sorted((r for r in rows if r["acceptance"] == rule), key=lambda r: r["shots"])
        s = [r["shots"] for r in sel]
        a.plot(s, [r["integrated_sq_diff"] for r in sel], marker, label=rule)
        b.errorbar(s, [r["mean_exact_epot_mev_per_atom"] - exact["mean_exact_epot_mev_per_atom"] for r in sel],
                   yerr=[r["mean_exact_epot_stderr"] for r in sel], fmt=marker, capsize=3, label=rule)
    a.axhline(result["floor_integrated_sq_diff"], color="grey", ls="--", label="exact, other seed (floor)")
    b.axhspan(-exact["mean_exact_epot_stderr"], exact["mean_exact_epot_stderr"], color="grey", alpha=0.3, label="exact chain ± s.e.")
    for ax in (a, b):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())   # minor labels overlap on short ranges
        ax.set_xlabel("shots per circuit")
        ax.legend(fontsize=8)
    a.set_ylabel("∫ (g - g_exact)² dr (Å)")
    b.set_ylabel("<E_pot> - exact chain's (meV/atom)")
    _save(fig, path, 130)
