#!/usr/bin/env bash
# Isobaric Monte Carlo on shot-noisy energies: the chain of run_mc.sh (ZBL fine-tune, 3000 K, 10 GPa; 60,000 steps,
# 2,000 adapting) with every energy measured on `aer` at 2,000 shots per circuit (standard error about 0.16 eV per
# energy, 0.63 k_B T), the current state's estimate reused; penalty and plain acceptance side by side, one thread
# each (about 40 minutes on the 2-core machine). Does the density come out as the exact chain's? docs/results.md
# "Isobaric Monte Carlo". A killed run continues with --resume (this script adds it and unpacks the log and samples,
# which are gzipped afterwards).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source runs/density/npt/chain_lib.sh
one() {   # acceptance
    hqc_chain 60000 $D/zbl_p10_mc_aer2000_$1 runs/density/small_l2_hqc_cz_density_zbl --backend aer --shots 2000 \
        --acceptance "$1" --ensemble npt --pressure 10 --temperature 3000 --adapt-steps 2000 --delta 0.05
}
one penalty & pid=$!
one plain
wait $pid
