#!/usr/bin/env bash
# The synthetic-noise chain of run_mc_checks.sh (0.16 eV, seed 0) with the step-size adaptation's default since
# session 38: target acceptance x the acceptance the noise alone allows. Does it keep the exact chain's step sizes and
# decorrelate faster? (docs/simulation.md "Step sizes with noisy energies"; about 10 minutes of one thread.)
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PY:-.venv/bin/python}
out=runs/density/npt/zbl_p10_mc_synth0.16_scaled_seed0
if grep -qs '"steps": 60000,' "$out/mc_summary.json"; then echo "$out: done"; exit 0; fi
for f in "$out/mc_log.csv.gz" "$out/mc_traj.extxyz.gz"; do if [ -f "$f" ]; then gunzip -f "$f"; fi; done
OMP_NUM_THREADS=1 "$PY" runs/density/npt/synthetic_noise_mc.py --sigma 0.16 --seed 0 --steps 60000 --out "$out" > "$out.log" 2>&1
gzip -f "$out/mc_log.csv" "$out/mc_traj.extxyz"
