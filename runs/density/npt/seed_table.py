"""The isobaric ZBL chains at 3000 K and 10 GPa (run_mc.sh, run_mc_shots.sh, run_mc_checks.sh,
run_mc_scaled_target.sh, run_mc_more_seeds.sh): each chain's mean density and error bar, and per group (exact; noisy
with the old and the noise-scaled adaptation target) the mean over chains with the error from their spread.

    python runs/density/npt/seed_table.py
"""
import json
from pathlib import Path

import numpy as np

here = Path(__file__).resolve().parent


def finished(pattern: str) -> list[str]:
    """Chains matching ``pattern`` whose summary exists (a run still going has none)."""
    return sorted(p.name for p in here.glob(pattern) if (p / "mc_summary.json").exists())


groups = {"exact": ["zbl_p10_mc"] + finished("zbl_p10_mc_exact_seed*"),
          "noisy_absolute_target": finished("zbl_p10_mc_aer2000_*") + finished("zbl_p10_mc_synth0.16_seed*"),
          "noisy_scaled_target": finished("zbl_p10_mc_synth0.16_scaled_seed*")}
means = {}
for group, names in groups.items():
    values = []
    for name in names:
        summary = json.loads((here / name / "mc_summary.json").read_text())
        rho = summary["averages"]["density_g_cm3"]
        values.append(rho["mean"])
        print(f"{group[:14]:14s} {name:36s} {summary['steps']:7d} steps  {rho['mean']:.4f} +- {rho['stderr']:.4f} g/cm3  "
              f"tau {rho['tau_steps']:5.0f}  max_dlnv {summary['final_max_dlnv']:.4f}")
    values = np.array(values)
    means[group] = (values.mean(), values.std(ddof=1) / np.sqrt(len(values)))
    print(f"{group}: mean of {len(values)} chains {means[group][0]:.4f} +- {means[group][1]:.4f} (spread sd "
          f"{values.std(ddof=1):.4f})")
for group in ("noisy_absolute_target", "noisy_scaled_target"):
    diff = means[group][0] - means["exact"][0]
    err = np.hypot(means[group][1], means["exact"][1])
    print(f"{group} - exact: {diff:+.4f} +- {err:.4f} g/cm3 ({diff / err:.1f} sigma)")
