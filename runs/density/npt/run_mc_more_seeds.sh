#!/usr/bin/env bash
# More seeds for the noisy-vs-exact question of docs/results.md "Isobaric Monte Carlo": the synthetic-noise chain
# (0.16 eV) with the noise-scaled adaptation, seeds 1-2, beside exact chains with seeds 3-4; 60,000 steps each, one
# thread each (about 16 minutes on the 2-core machine). Logs and samples gzipped afterwards.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source runs/density/npt/chain_lib.sh
one() { synthetic_chain 60000 "$3" --sigma "$1" --seed "$2"; }   # sigma seed out
( for s in 1 2; do one 0.16 $s $D/zbl_p10_mc_synth0.16_scaled_seed$s; done ) & pid=$!
for s in 3 4; do one 0 $s $D/zbl_p10_mc_exact_seed$s; done
wait $pid
