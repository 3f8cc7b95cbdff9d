#!/usr/bin/env bash
# Is the density offset of the chains adapted the old way (docs/results.md "Isobaric Monte Carlo") an effect of their
# small step sizes rather than of the noise? Exact chains (no noise) with those step sizes fixed from the start
# (delta 0.05 Å, max_dlnv 0.018, as the old adaptation ended), seeds 0-1, 60,000 steps, one thread each.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PY:-.venv/bin/python}
D=runs/density/npt
one() {   # seed out
    if grep -qs '"steps": 60000,' "$2/mc_summary.json"; then echo "$2: done"; return; fi
    for f in "$2/mc_log.csv.gz" "$2/mc_traj.extxyz.gz"; do if [ -f "$f" ]; then gunzip -f "$f"; fi; done
    OMP_NUM_THREADS=1 "$PY" $D/synthetic_noise_mc.py --sigma 0 --fixed-steps 0.05 0.018 --seed "$1" --steps 60000 \
        --out "$2" > "$2.log" 2>&1
    gzip -f "$2/mc_log.csv" "$2/mc_traj.extxyz"
}
one 0 $D/zbl_p10_mc_exact_smallsteps_seed0 & pid=$!
one 1 $D/zbl_p10_mc_exact_smallsteps_seed1
wait $pid
