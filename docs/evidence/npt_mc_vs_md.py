"""docs/results.md "Isobaric Monte Carlo": the density of the same model at 3000 K and 10 GPa from isobaric Monte Carlo
(`hqc-qiskit mc --ensemble npt`) and from NPT MD (`hqc-qiskit md --ensemble npt`, MTK barostat), with two error bars
each: the summary's (autocorrelation time by emcee's automatic window) and batch means over blocks longer than the
series' correlations; and the ZBL model's chain again on shot-noisy energies (aer, 2,000 shots per circuit), penalty
and plain acceptance, against its exact-energy chain. Writes docs/evidence/npt_mc_vs_md.json and
docs/img/npt_mc_vs_md.png (density distributions; the MD density's autocorrelation function and its running integral).

Inputs: `bash runs/density/npt/run.sh` (MD), `bash runs/density/npt/run_mc.sh` (MC),
`bash runs/density/npt/run_mc_shots.sh` (MC on shots).
Usage: python docs/evidence/npt_mc_vs_md.py [--plot]    (--plot: only redraw the figure from the JSON)
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from _evidence import main, read_json, save_figure
from hqc_qiskit.autocorr import block_average
from hqc_qiskit.runlog import read_rows

ROOT = Path(__file__).resolve().parents[2]
NPT = ROOT / "runs" / "density" / "npt"
# name of the MD run (NPT/<name>_p10) and MC chain (NPT/<name>_p10_mc): the model that drove both
MODELS = {"zbl": "runs/density/small_l2_hqc_cz_density_zbl",
          "closepair": "runs/density/small_l2_hqc_cz_density_closepair_dense_zbl"}
# chains of the ZBL model on shot-noisy energies (NPT/<name>), compared with its exact chain (NPT/zbl_p10_mc)
SHOT_CHAINS = {"penalty": "zbl_p10_mc_aer2000_penalty", "plain": "zbl_p10_mc_aer2000_plain"}
MD_BLOCK_ROWS = 20       # 400 MD steps (rows every 20): longer than one barostat oscillation (~16 rows, below)
MC_BLOCK_STEPS = 4000    # MC rows are steps; the chains' tau is 500-700 steps
MAX_LAG_ROWS = 40        # autocorrelation of the MD density shown and integrated up to this lag
OUT = ROOT / "docs" / "evidence" / "npt_mc_vs_md.json"
PLOT = ROOT / "docs" / "img" / "npt_mc_vs_md.png"


def _tail(values: list[float]) -> np.ndarray:
    """The series after its first fifth (what the summaries average)."""
    return np.asarray(values[len(values) // 5:], float)


def _batch_means(x: np.ndarray, block: int) -> dict:
    mean, err, used = block_average(x, len(x) // block)
    return {"block": block, "blocks": used, "mean": float(mean), "stderr": float(err)}


def _mc_densities(name: str) -> np.ndarray:
    """The density series (g/cm³) of the chain NPT/<name> after its first fifth."""
    with gzip.open(NPT / name / "mc_log.csv.gz", "rt") as fh:
        return _tail([float(r["density_g_cm3"]) for r in csv.DictReader(fh)])


def _shot_chains(exact: dict) -> dict:
    """Each shot-based chain's density (batch means) against the exact chain's ``exact`` batch means."""
    out = {}
    for rule, name in SHOT_CHAINS.items():
        summary = read_json(NPT / name / "mc_summary.json")
        rho = _mc_densities(name)
        block = _batch_means(rho, MC_BLOCK_STEPS)
        diff = block["mean"] - exact["mean"]
        sigma = float(np.hypot(block["stderr"], exact["stderr"]))
        out[rule] = {"run": f"runs/density/npt/{name}", "steps": summary["steps"], "shots": summary["options"]["shots"],
                     "acceptance": summary["options"]["acceptance"], "acceptance_ratio": summary["acceptance_ratio"],
                     "volume_acceptance": summary["volume_acceptance_ratio"], "final_sigma_eV": summary["final_sigma_eV"],
                     "summary": summary["averages"]["density_g_cm3"], "batch_means": block,
                     "energy_eV_per_atom": summary["averages"].get("energy_eV_per_atom"),
                     "wall_seconds": summary["wall_seconds"], "minus_exact": diff, "combined_stderr": sigma,
                     "z": diff / sigma, "histogram": np.histogram(rho, bins=40, range=(2.5, 3.05))[0].tolist()}
    return out


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation function of a series at lags 0..max_lag."""
    d = x - x.mean()
    return np.array([np.dot(d[:len(d) - k], d[k:]) / (len(d) * d.var()) for k in range(max_lag + 1)])


def gather() -> dict:
    models = {}
    for name, run_dir in MODELS.items():
        md_summary = read_json(NPT / f"{name}_p10" / "md_summary.json")
        mc_summary = read_json(NPT / f"{name}_p10_mc" / "mc_summary.json")
        md = _tail([r["density_g_cm3"] for r in read_rows(NPT / f"{name}_p10" / "md_log.csv")])
        mc = _mc_densities(f"{name}_p10_mc")
        acf = _acf(md, MAX_LAG_ROWS)
        running = 1 + 2 * np.cumsum(acf[1:])
        md_block, mc_block = _batch_means(md, MD_BLOCK_ROWS), _batch_means(mc, MC_BLOCK_STEPS)
        diff = mc_block["mean"] - md_block["mean"]
        sigma = float(np.hypot(mc_block["stderr"], md_block["stderr"]))
        models[name] = {
            "model": run_dir,
            "md": {"run": f"runs/density/npt/{name}_p10", "steps": md_summary["steps"],
                   "log_every": md_summary["options"]["log_every"], "pdamp_fs": md_summary["options"]["pdamp"],
                   "summary": md_summary["averages"]["density_g_cm3"], "batch_means": md_block,
                   "wall_seconds": md_summary["wall_seconds"],
                   "acf": acf.tolist(), "running_tau_rows": running.tolist(),
                   "running_tau_range_rows": [float(running.min()), float(running.max())]},
            "mc": {"run": f"runs/density/npt/{name}_p10_mc", "steps": mc_summary["steps"],
                   "volume_acceptance": mc_summary["volume_acceptance_ratio"], "summary": mc_summary["averages"]["density_g_cm3"],
                   "batch_means": mc_block, "wall_seconds": mc_summary["wall_seconds"],
                   "histogram": np.histogram(mc, bins=40, range=(2.5, 3.05))[0].tolist()},
            "md_histogram": np.histogram(md, bins=40, range=(2.5, 3.05))[0].tolist(),
            "mc_minus_md": diff, "combined_stderr": sigma, "z": diff / sigma,
            "std_mc": float(mc.std()), "std_md": float(md.std()),
        }
    return {"histogram_range": [2.5, 3.05], "md_block_rows": MD_BLOCK_ROWS, "mc_block_steps": MC_BLOCK_STEPS,
            "models": models, "shot_chains": _shot_chains(models["zbl"]["mc"]["batch_means"])}


def summary(result: dict) -> None:
    for name, m in result["models"].items():
        md, mc = m["md"], m["mc"]
        print(f"{name}: MC {mc['batch_means']['mean']:.4f} ± {mc['batch_means']['stderr']:.4f} (summary ± "
              f"{mc['summary']['stderr']:.4f}), MD {md['batch_means']['mean']:.4f} ± {md['batch_means']['stderr']:.4f} "
              f"(summary ± {md['summary']['stderr']:.4f}, tau {md['summary']['tau_steps']:.0f} steps; running tau "
              f"{md['running_tau_range_rows'][0]:.2f}-{md['running_tau_range_rows'][1]:.2f} rows); MC - MD "
              f"{m['mc_minus_md']:+.4f} g/cm³ = {m['z']:+.1f} sigma; spread MC {m['std_mc']:.4f}, MD {m['std_md']:.4f}")
    for rule, c in result["shot_chains"].items():
        print(f"zbl on {c['shots']} shots, {rule}: {c['batch_means']['mean']:.4f} ± {c['batch_means']['stderr']:.4f} g/cm³, "
              f"exact chain {c['minus_exact']:+.4f} = {c['z']:+.1f} sigma; acceptance {c['acceptance_ratio']:.3f}, "
              f"volume moves {c['volume_acceptance']:.3f}; sigma of an energy {c['final_sigma_eV']:.3f} eV")


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4))
    lo, hi = result["histogram_range"]
    for k, (name, m) in enumerate(result["models"].items()):
        edges = np.linspace(lo, hi, len(m["md_histogram"]) + 1)
        for counts, kind, ls in ((m["mc"]["histogram"], "MC", "-"), (m["md_histogram"], "MD", "--")):
            density = np.asarray(counts, float) / (np.sum(counts) * np.diff(edges))
            a.stairs(density, edges, color=f"C{k}", ls=ls, label=f"{name}: {kind}")
        lags = np.arange(len(m["md"]["acf"])) * m["md"]["log_every"]
        b.plot(lags, m["md"]["acf"], color=f"C{k}", label=name)
        c.plot(lags[1:], m["md"]["running_tau_rows"], color=f"C{k}", label=f"{name}: 1 + 2 sum of ACF")
        c.axhline(m["md"]["summary"]["tau_steps"] / m["md"]["log_every"], color=f"C{k}", ls=":",
                  label=f"{name}: emcee's tau")
    for k, (rule, chain) in enumerate(result["shot_chains"].items()):
        edges = np.linspace(lo, hi, len(chain["histogram"]) + 1)
        density = np.asarray(chain["histogram"], float) / (np.sum(chain["histogram"]) * np.diff(edges))
        a.stairs(density, edges, color=f"C{k + 2}", ls=":", label=f"zbl: MC, {chain['shots']} shots, {rule}")
    a.set_xlabel("density (g/cm³)")
    a.set_ylabel("probability density")
    a.set_title("3000 K, 10 GPa: isobaric MC against NPT MD")
    b.axhline(0, color="grey", lw=0.6)
    b.set_xlabel("lag (MD steps)")
    b.set_ylabel("autocorrelation of the MD density")
    c.set_xlabel("lag (MD steps)")
    c.set_ylabel("integrated autocorrelation time (log rows)")
    for ax in (a, b, c):
        ax.legend(fontsize=7)
    save_figure(fig, PLOT, 120)


if __name__ == "__main__":
    main(__doc__, gather, OUT, plot, summary)
