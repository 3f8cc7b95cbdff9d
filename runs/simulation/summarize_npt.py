"""The numbers of docs/results.md "NPT at the data's own pressure", from the run's log and the CP2K comparison.

    python runs/simulation/summarize_npt.py

Mean density over the last 80% of the NPT log with its block-average standard error (4 to 10 blocks), the
isothermal bulk modulus from the run's own volume fluctuations (K = kB T <V> / var V), the DFT target's mean and
standard error over its frames, the kinetic pressure that the target adds to it, and what the model's pressure bias and the target's error mean in density (dP / K).
"""

import json
from pathlib import Path

import numpy as np
from ase.units import GPa, kB

from hqc_qiskit.autocorr import block_average
from hqc_qiskit.runlog import read_rows

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "runs" / "simulation" / "npt_3000K_small_l2_hqc_cz"
MODEL = "runs/small_l2_hqc_cz_long"
DATA_DENSITY = 2.3290   # g/cm^3, `hqc-qiskit data info` on the shipped training split

rows = read_rows(RUN / "md_log.csv")
tail = rows[len(rows) // 5:]
rho = np.array([r["density_g_cm3"] for r in tail])
volume = np.array([r["volume_A3"] for r in tail])
temperature = np.mean([r["T_K"] for r in tail])
print(f"{len(tail)} log rows from {tail[0]['time_fs'] / 1000:.1f} ps: density {rho.mean():.4f} g/cm³ "
      f"({(rho.mean() / DATA_DENSITY - 1) * 100:+.1f}% against the data's {DATA_DENSITY}), "
      f"T {temperature:.0f} K, P {np.mean([r['P_GPa'] for r in tail]):.3f} GPa")
print("standard error of the mean density: " + ", ".join(
    f"{block_average(rho, n)[1]:.4f} ({n} blocks)" for n in (4, 5, 8, 10)))
bulk = kB * temperature * volume.mean() / volume.var() / GPa
print(f"bulk modulus from the volume fluctuations: {bulk:.1f} GPa")

summary = json.loads((RUN / "md_summary.json").read_text())
kinetic = summary["n_atoms"] * kB * summary["options"]["temperature"] / rows[0]["volume_A3"] / GPa
print(f"drift of MTK's conserved energy: {summary['drift_conserved_mev_per_atom_ps']:+.3f} meV/atom/ps "
      f"({summary['steps']} steps, {summary['wall_seconds'] / 60:.0f} min of wall time)")
print(f"kinetic pressure N kB T / V at {summary['options']['temperature']:g} K and the starting volume: {kinetic:.2f} GPa")

report = json.loads((ROOT / "docs" / "evidence" / "cp2k_stress.json").read_text())
dft = np.array(report["dft"]["pressure_gpa"])
stderr = dft.std(ddof=1) / np.sqrt(len(dft))
bias = report["models"][MODEL]["pressure_mean_error_gpa"]
print(f"DFT virial pressure over {len(dft)} frames: mean {dft.mean():.2f} GPa, standard error {stderr:.2f} GPa "
      f"-> {stderr / bulk * 100:.1f}% in density; NPT target {dft.mean() + kinetic:.2f} GPa")
print(f"{MODEL} pressure mean error {bias:+.2f} GPa -> {-bias / bulk * 100:+.1f}% in density")
