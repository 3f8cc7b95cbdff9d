#!/usr/bin/env bash
# The synthetic-noise chain of run_mc_checks.sh (0.16 eV, seed 0) with the step-size adaptation's default since
# session 38: target acceptance x the acceptance the noise alone allows. Does it keep the exact chain's step sizes and
# decorrelate faster? (docs/simulation.md "Step sizes with noisy energies"; about 10 minutes of one thread.)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source runs/density/npt/chain_lib.sh
synthetic_chain 60000 $D/zbl_p10_mc_synth0.16_scaled_seed0 --sigma 0.16 --seed 0
