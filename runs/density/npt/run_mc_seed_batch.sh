#!/usr/bin/env bash
# Session 39's seeds for docs/results.md "Isobaric Monte Carlo" (table: python docs/evidence/npt_mc_seeds.py):
# exact chains with the old adaptation's small steps fixed (delta 0.05 Å, max dln V 0.018, as the old adaptation
# ended: is the old chains' offset an effect of the step size rather than of the noise?), seeds 0-5; four more
# chains on exact + Gaussian 0.16 eV adapted the old way (--absolute-target, seeds 4-7); two more with the
# noise-scaled adaptation (seeds 3-4); two more exact adapted ones (seeds 5-6). 60,000 steps each, two lanes of one
# thread (13-22 minutes a chain, 7 chains a lane, on the 2-core machine; small-step seeds 0-1 ran first on their
# own, the last four after the rest). Finished chains are skipped, so the script can be run again after an
# interruption (an unfinished chain resumes from its checkpoint).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source runs/density/npt/chain_lib.sh
one() { synthetic_chain 60000 "$@"; }   # out, then the arguments of synthetic_noise_mc.py
absolute() { one $D/zbl_p10_mc_synth0.16_seed$1 --sigma 0.16 --absolute-target --seed $1; }
small() { one $D/zbl_p10_mc_exact_smallsteps_seed$1 --sigma 0 --fixed-steps 0.05 0.018 --seed $1; }
scaled() { one $D/zbl_p10_mc_synth0.16_scaled_seed$1 --sigma 0.16 --seed $1; }
exact() { one $D/zbl_p10_mc_exact_seed$1 --sigma 0 --seed $1; }
( small 0; absolute 4; small 2; absolute 6; scaled 3; small 4; exact 5 ) & lane=$!
small 1; absolute 5; small 3; absolute 7; scaled 4; small 5; exact 6
wait $lane
