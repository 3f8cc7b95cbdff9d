"""Table of the MD study (runs/simulation/md_study.sh) -> runs/simulation/md_summary.md and a g(r) plot.

    python runs/simulation/summarize_md.py
"""

import json
from pathlib import Path

import numpy as np

from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.plots import plot_rdf
from hqc_qiskit.rdf import RDF, compute_rdf

HERE = Path(__file__).resolve().parent
rows = ["| model | run | steps done (of asked) | time (ps) | stable | mean T (K) | conserved-energy drift (meV/atom/ps) | "
        "g(r) first peak r (Å) / height | DFT 3000 K peak r / height | ∫(g - g_DFT)² dr (Å) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
curves = {}
for run in sorted(HERE.glob("md/*/*/md_summary.json")):
    s = json.loads(run.read_text())
    model, kind = run.parent.parent.name, run.parent.name
    cmp_path = run.parent / "rdf_vs_dft.json"
    saved = json.loads(cmp_path.read_text()) if cmp_path.exists() else None
    c = saved["comparison"] if saved else None
    status = "yes" if s["stable"] else f"no: {s['unstable_reason']}"
    peak = f"{c['first_peak_r']:.3f} / {c['first_peak_g']:.2f}" if c else ""
    ref = f"{c['ref_first_peak_r']:.3f} / {c['ref_first_peak_g']:.2f}" if c else ""
    isd = f"{c['integrated_sq_diff']:.4f}" if c else ""
    rows.append(f"| {model} | {kind} | {s['steps']} ({s['options']['steps']}) | {s['time_ps']:.2f} | {status} | {s['mean_T_K']:.0f} | "
                f"{s['drift_conserved_mev_per_atom_ps']:+.4f} | {peak} | {ref} | {isd} | {s['wall_seconds']:.0f} |")
    if c and kind == "nvt_2000K" and s["stable"]:
        r = saved["rdf"]
        curves[f"{model} (2000 K)"] = RDF(*(np.asarray(r[k]) for k in ("r", "g", "err")), r["n_frames"], r["n_blocks"])
(HERE / "md_summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
if curves:
    dft = compute_rdf(read_structures(HERE.parents[1] / "data/si_liquid_3000K/si_liquid_3000K.extxyz.gz"), 6.0, 120)
    plot_rdf({"DFT (CP2K PBE, 3000 K)": dft, **curves}, HERE / "md_rdf_vs_dft.png", title="g(r): NVT MD at 2000 K vs DFT frames at 3000 K")
