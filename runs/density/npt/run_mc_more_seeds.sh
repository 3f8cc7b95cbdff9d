#!/usr/bin/env bash
# More seeds for the noisy-vs-exact question of docs/results.md "Isobaric Monte Carlo": the synthetic-noise chain
# (0.16 eV) with the noise-scaled adaptation, seeds 1-2, beside exact chains with seeds 3-4; 60,000 steps each, one
# thread each (about 16 minutes on the 2-core machine). Logs and samples gzipped afterwards.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PY:-.venv/bin/python}
D=runs/density/npt
one() {   # sigma seed out
    if grep -qs '"steps": 60000,' "$3/mc_summary.json"; then echo "$3: done"; return; fi
    for f in "$3/mc_log.csv.gz" "$3/mc_traj.extxyz.gz"; do if [ -f "$f" ]; then gunzip -f "$f"; fi; done
    OMP_NUM_THREADS=1 "$PY" $D/synthetic_noise_mc.py --sigma "$1" --seed "$2" --steps 60000 --out "$3" > "$3.log" 2>&1
    gzip -f "$3/mc_log.csv" "$3/mc_traj.extxyz"
}
( for s in 1 2; do one 0.16 $s $D/zbl_p10_mc_synth0.16_scaled_seed$s; done ) & pid=$!
for s in 3 4; do one 0 $s $D/zbl_p10_mc_exact_seed$s; done
wait $pid
