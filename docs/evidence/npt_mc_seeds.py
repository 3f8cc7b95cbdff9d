"""docs/results.md "Isobaric Monte Carlo", the seeds: every isobaric chain of the ZBL model at 3000 K and 10 GPa
(test frame 0, 5 atoms displaced per step, 10% volume moves), grouped by how its energies were measured and how its
step sizes were set; each chain's mean density with its summary's error bar, and per group the mean over chains with
the error from their spread, against the exact chains adapted as usual. Writes docs/evidence/npt_mc_seeds.json and
docs/img/npt_mc_seeds.png (densities per group; each chain's density autocorrelation time against its volume step).

Inputs (runs/density/npt/): run_mc.sh (exact seed 0), run_mc_shots.sh (aer 2,000 shots), run_mc_checks.sh,
run_mc_scaled_target.sh, run_mc_more_seeds.sh and run_mc_seed_batch.sh (further seeds; exact + Gaussian 0.16 eV via
synthetic_noise_mc.py; the batch also the exact chains with the small steps the old adaptation ended at),
run_mc_extend.sh (session 40: the exact chains of both step sizes, seeds 1-6 adapted and 0-5 small, continued in place
to 120,000 steps).

The step-size question was set before the continuation ran: session 39 found the 17 small-step chains +0.011 ± 0.004
g/cm³ above the 12 adapted ones over their first 60,000 steps (a grouping chosen after seeing the data). The test
fixed then: over steps 60,000-120,000 of the continued exact chains, small minus adapted; a difference of 2 standard
errors or more (from the spread over seeds) would say the association holds up on new data, less would not
(comparisons "small_minus_adapted_steps" "continuation_60000_to_120000").
Usage: python docs/evidence/npt_mc_seeds.py [--plot]    (--plot: only redraw the figure from the JSON)
"""

from __future__ import annotations

import csv
import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from _evidence import main, read_json, save_figure

ROOT = Path(__file__).resolve().parents[2]
NPT = ROOT / "runs" / "density" / "npt"
REFERENCE = "exact"
# noise at equal step sizes: (noisy group, exact group with the same step sizes)
SAME_STEPS = {"noise_at_adapted_steps": ("noisy_scaled_target", "exact"),
              "noise_at_small_steps": ("noisy_absolute_target", "exact_small_steps")}
SMALL_STEPS, ADAPTED_STEPS = ("exact_small_steps", "noisy_absolute_target"), ("exact", "noisy_scaled_target")
THIRDS = ((12000, 28000), (28000, 44000), (44000, 60000))   # log rows: a 60,000-step chain's averaged part in thirds
CONTINUATION = (60000, 120000)   # log rows of the continuation by run_mc_extend.sh (new data for the step-size question)
# group -> (what it is, glob patterns of the chain folders in NPT); a chain still running (no summary) is left out
GROUPS = {
    "exact": ("exact energies, step sizes adapted", ["zbl_p10_mc", "zbl_p10_mc_exact_seed*"]),
    "exact_small_steps": ("exact energies, the old adaptation's small steps fixed (delta 0.05 A, max dlnV 0.018)",
                          ["zbl_p10_mc_exact_smallsteps_seed*"]),
    "noisy_absolute_target": ("noisy (aer 2,000 shots or exact + Gaussian 0.16 eV), adapted to 0.5 of the raw "
                              "acceptance (the old rule)", ["zbl_p10_mc_aer2000_*", "zbl_p10_mc_synth0.16_seed*"]),
    "noisy_scaled_target": ("exact + Gaussian 0.16 eV, adapted to 0.5 of the noise ceiling (the default)",
                            ["zbl_p10_mc_synth0.16_scaled_seed*"]),
}


def _chains(patterns: list[str]) -> list[Path]:
    found = {p for pattern in patterns for p in NPT.glob(pattern) if (p / "mc_summary.json").exists()}
    return sorted(found, key=lambda p: p.name)


def _chain(path: Path) -> dict:
    s = read_json(path / "mc_summary.json")
    rho = s["averages"]["density_g_cm3"]
    return {"run": f"runs/density/npt/{path.name}", "steps": s["steps"], "seed": s["options"]["seed"],
            "backend": s["backend"], "acceptance": s["options"]["acceptance"], "adapt_steps": s["options"]["adapt_steps"],
            "final_sigma_eV": s["final_sigma_eV"], "density_g_cm3": rho["mean"], "stderr": rho["stderr"],
            "tau_steps": rho["tau_steps"], "final_delta_A": s["final_delta_A"], "final_max_dlnv": s["final_max_dlnv"],
            "acceptance_ratio": s["acceptance_ratio"], "volume_acceptance_ratio": s["volume_acceptance_ratio"],
            "wall_seconds": s["wall_seconds"]}


@lru_cache(maxsize=None)
def _logged_densities(run: str) -> np.ndarray:
    """Density (g/cm³) of every step of the chain ``run`` from its gzipped log (read once: the thirds and the
    continuation both window it)."""
    with gzip.open(ROOT / run / "mc_log.csv.gz", "rt") as fh:
        return np.array([float(r["density_g_cm3"]) for r in csv.DictReader(fh)])


def _window_means(run: str, windows) -> list[float]:
    """Mean density (g/cm³) of the chain ``run`` over each (first, end) window of its log rows (row k: step k + 1)."""
    rho = _logged_densities(run)
    if len(rho) < max(end for _, end in windows):
        raise ValueError(f"{run}: {len(rho)} log rows, fewer than the windows {windows} need")
    return [float(rho[a:b].mean()) for a, b in windows]


def _difference(a: list[float], b: list[float]) -> dict:
    """Mean of ``a`` minus mean of ``b`` (values over chains) with the error from both spreads."""
    return {"chains": [len(a), len(b)], **_mean_minus(_over_chains(a), _over_chains(b))}


def _mean_minus(first: dict, second: dict) -> dict:
    """first's mean minus second's (both from :func:`_over_chains`), the errors combined."""
    diff, err = first["mean"] - second["mean"], float(np.hypot(first["stderr"], second["stderr"]))
    return {"diff": diff, "stderr": err, "z": diff / err}


def _over_chains(values: list[float]) -> dict:
    """Mean over chains with its standard error from their spread (None for fewer than two chains)."""
    v = np.asarray(values, float)
    spread = float(v.std(ddof=1)) if len(v) > 1 else None
    return {"n_chains": len(v), "mean": float(v.mean()), "spread_sd": spread,
            "stderr": spread / float(np.sqrt(len(v))) if spread is not None else None}


def gather() -> dict:
    groups = {}
    for name, (what, patterns) in GROUPS.items():
        chains = [_chain(p) for p in _chains(patterns)]
        if chains:
            groups[name] = {"what": what, "chains": chains, **_over_chains([c["density_g_cm3"] for c in chains]),
                            "median_tau_steps": float(np.median([c["tau_steps"] for c in chains]))}
    ref = groups[REFERENCE]
    for name, g in groups.items():
        if name != REFERENCE and g["stderr"] is not None:
            g["minus_exact"] = _mean_minus(g, ref)

    def densities(names):
        return [c["density_g_cm3"] for n in names for c in groups[n]["chains"]]

    def windows(names, spans):   # chains x spans: every chain of the groups that ran through the last span
        return np.array([_window_means(c["run"], spans) for n in names for c in groups[n]["chains"]
                         if c["steps"] >= spans[-1][1]]).reshape(-1, len(spans))

    comparisons = {key: _difference(densities([noisy]), densities([exact])) for key, (noisy, exact) in SAME_STEPS.items()}
    small, adapted = windows(SMALL_STEPS, THIRDS), windows(ADAPTED_STEPS, THIRDS)
    comparisons["small_minus_adapted_steps"] = {
        **_difference(densities(SMALL_STEPS), densities(ADAPTED_STEPS)),
        "by_thirds_of_first_60000_steps": [_difference(small[:, k].tolist(), adapted[:, k].tolist()) for k in range(3)]}
    small, adapted = windows(SMALL_STEPS, [CONTINUATION]), windows(ADAPTED_STEPS, [CONTINUATION])
    if len(small) > 1 and len(adapted) > 1:
        comparisons["small_minus_adapted_steps"]["continuation_60000_to_120000"] = _difference(
            small[:, 0].tolist(), adapted[:, 0].tolist())
    return {"reference": REFERENCE, "groups": groups, "comparisons": comparisons}


def summary(result: dict) -> None:
    for name, g in result["groups"].items():
        for c in g["chains"]:
            print(f"{name[:17]:17s} {Path(c['run']).name:36s} {c['steps']:7d} steps  {c['density_g_cm3']:.4f} ± "
                  f"{c['stderr']:.4f} g/cm³  tau {c['tau_steps']:5.0f}  delta {c['final_delta_A']:.3f} Å  "
                  f"max_dlnv {c['final_max_dlnv']:.4f}")
        err = f" ± {g['stderr']:.4f} (spread sd {g['spread_sd']:.4f})" if g["stderr"] is not None else ""
        line = f"{name}: mean of {g['n_chains']} chains {g['mean']:.4f}{err}"
        if "minus_exact" in g:
            d = g["minus_exact"]
            line += f"; minus exact {d['diff']:+.4f} ± {d['stderr']:.4f} g/cm³ ({d['z']:+.1f} sigma)"
        print(line + f"; median tau {g['median_tau_steps']:.0f} steps")
    for key, d in result["comparisons"].items():
        print(f"{key} ({d['chains'][0]} vs {d['chains'][1]} chains): {d['diff']:+.4f} ± {d['stderr']:.4f} g/cm³ "
              f"({d['z']:+.1f} sigma)")
        for k, t in enumerate(d.get("by_thirds_of_first_60000_steps", [])):
            print(f"  third {k + 1}: {t['diff']:+.4f} ± {t['stderr']:.4f} ({t['chains'][0]} vs {t['chains'][1]} chains)")
        if "continuation_60000_to_120000" in d:
            t = d["continuation_60000_to_120000"]
            print(f"  steps 60,000-120,000: {t['diff']:+.4f} ± {t['stderr']:.4f} ({t['chains'][0]} vs "
                  f"{t['chains'][1]} chains, {t['z']:+.1f} sigma)")


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
    ref = result["groups"][result["reference"]]
    a.axhspan(ref["mean"] - ref["stderr"], ref["mean"] + ref["stderr"], color="grey", alpha=0.25,
              label="exact chains: mean ± s.e. over seeds")
    names = list(result["groups"])
    for k, name in enumerate(names):
        g = result["groups"][name]
        x = k + np.linspace(-0.25, 0.25, len(g["chains"]))
        a.errorbar(x, [c["density_g_cm3"] for c in g["chains"]], [c["stderr"] for c in g["chains"]], fmt="o",
                   color=f"C{k}", ms=4, capsize=2)
        if g["stderr"] is not None:
            a.errorbar([k + 0.38], [g["mean"]], [g["stderr"]], fmt="D", color="k", ms=6, capsize=4)
        b.scatter([c["final_max_dlnv"] for c in g["chains"]], [c["tau_steps"] for c in g["chains"]], color=f"C{k}",
                  label=name.replace("_", " "))
    a.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    a.set_ylabel("mean density (g/cm³)")
    a.set_title("ZBL model, 3000 K, 10 GPa: chains (dots) and their mean (diamond)")
    a.legend(fontsize=7, loc="upper left")
    b.set_xlabel("max dln V of the volume moves (after adaptation)")
    b.set_ylabel("density autocorrelation time (steps)")
    b.set_title("each chain: autocorrelation time against volume step")
    b.legend(fontsize=7)
    save_figure(fig, ROOT / "docs" / "img" / "npt_mc_seeds.png", 120)


if __name__ == "__main__":
    main(__doc__, gather, ROOT / "docs" / "evidence" / "npt_mc_seeds.json", plot, summary)
