#!/usr/bin/env bash
# Session 40: the exact chains of run_mc_seed_batch.sh's two step sizes (adapted: seeds 1-6; small steps fixed at
# delta 0.05 Å, max dln V 0.018: seeds 0-5) continued in place from 60,000 to 120,000 steps (the same chains: a
# resume may grow --steps). Does the small-step chains' higher density (docs/results.md "Isobaric Monte Carlo",
# +0.011 ± 0.004 g/cm³ over the first 60,000 steps) persist over the second half? Two lanes of one thread,
# alternating the two kinds (12-15 minutes a chain, about 90 minutes in all, on the 2-core machine); finished chains are skipped, so the
# script can be run again after an interruption. Table: python docs/evidence/npt_mc_seeds.py
set -euo pipefail
cd "$(dirname "$0")/../../.."
source runs/density/npt/chain_lib.sh
STEPS=120000
small() { synthetic_chain $STEPS $D/zbl_p10_mc_exact_smallsteps_seed$1 --sigma 0 --fixed-steps 0.05 0.018 --seed $1; }
exact() { synthetic_chain $STEPS $D/zbl_p10_mc_exact_seed$1 --sigma 0 --seed $1; }
( exact 1; small 0; exact 3; small 2; exact 5; small 4 ) & lane=$!
small 1; exact 2; small 3; exact 4; small 5; exact 6
wait $lane
