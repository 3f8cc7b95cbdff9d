#!/usr/bin/env bash
# Session 39's seeds for docs/results.md "Isobaric Monte Carlo" (table: python docs/evidence/npt_mc_seeds.py):
# four more chains on exact + Gaussian 0.16 eV adapted the old way (--absolute-target, seeds 4-7), two more exact
# chains with the old adaptation's small steps fixed (seeds 2-3), two more with the noise-scaled adaptation (seeds
# 3-4); then two more of each exact kind (small steps seeds 4-5, adapted seeds 5-6); 60,000 steps each, two lanes
# of one thread (13-22 minutes a chain, 6 chains a lane, on the 2-core machine). Finished chains are
# skipped, so the script can be run again after an interruption (an unfinished chain resumes from its checkpoint).
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PY:-.venv/bin/python}
D=runs/density/npt
one() {   # out, then the arguments of synthetic_noise_mc.py
    local out=$1; shift
    if grep -qs '"steps": 60000,' "$out/mc_summary.json"; then echo "$out: done"; return; fi
    for f in "$out/mc_log.csv.gz" "$out/mc_traj.extxyz.gz"; do if [ -f "$f" ]; then gunzip -f "$f"; fi; done
    OMP_NUM_THREADS=1 "$PY" $D/synthetic_noise_mc.py "$@" --steps 60000 --out "$out" >> "$out.log" 2>&1
    gzip -f "$out/mc_log.csv" "$out/mc_traj.extxyz"
}
absolute() { one $D/zbl_p10_mc_synth0.16_seed$1 --sigma 0.16 --absolute-target --seed $1; }
small() { one $D/zbl_p10_mc_exact_smallsteps_seed$1 --sigma 0 --fixed-steps 0.05 0.018 --seed $1; }
scaled() { one $D/zbl_p10_mc_synth0.16_scaled_seed$1 --sigma 0.16 --seed $1; }
exact() { one $D/zbl_p10_mc_exact_seed$1 --sigma 0 --seed $1; }
( absolute 4; small 2; absolute 6; scaled 3; small 4; exact 5 ) & lane=$!
absolute 5; small 3; absolute 7; scaled 4; small 5; exact 6
wait $lane
