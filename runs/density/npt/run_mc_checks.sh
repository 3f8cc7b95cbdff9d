#!/usr/bin/env bash
# Why does the shot-based isobaric chain (run_mc_shots.sh) come out denser than the exact one? Side by side, one
# thread each (about 75 minutes on the 2-core machine):
#   A: the exact chain plus synthetic Gaussian noise of 0.16 eV (the aer runs' standard error), reused, 4 seeds
#      (synthetic_noise_mc.py): the chain logic with noise of this size, without aer;
#   B: the aer penalty chain again with seed 1, then the exact chain with seeds 1 and 2 (the seed-to-seed spread).
# 60,000 steps each, the first 2,000 adapting, as run_mc_shots.sh. Logs and samples are gzipped afterwards; a killed
# run continues where its checkpoint is. These ran before the adaptation scaled its target by the noise ceiling, so
# the noisy ones say --absolute-target; run_mc_scaled_target.sh runs the same synthetic chain with the new default.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source runs/density/npt/chain_lib.sh
synthetic() {   # sigma seed out [--absolute-target]
    synthetic_chain 60000 "$3" --sigma "$1" --seed "$2" ${4:-}
}
aer_seed1() {
    hqc_chain 60000 $D/zbl_p10_mc_aer2000_penalty_seed1 runs/density/small_l2_hqc_cz_density_zbl --backend aer \
        --shots 2000 --acceptance penalty --ensemble npt --pressure 10 --temperature 3000 --adapt-steps 2000 \
        --delta 0.05 --seed 1 --absolute-target
}
( for s in 0 1 2 3; do synthetic 0.16 $s $D/zbl_p10_mc_synth0.16_seed$s --absolute-target; done ) & pid=$!
aer_seed1
for s in 1 2; do synthetic 0 $s $D/zbl_p10_mc_exact_seed$s; done
wait $pid
