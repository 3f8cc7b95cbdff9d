#!/usr/bin/env bash
# NPT at 3000 K and 3.44 (the DFT pressure), 15 and 30 GPa with the HQC-cz l=2 model (seed 0), watched by the
# same config's seeds 1 and 2: docs/results.md "Committee uncertainty". 2000 steps (1 ps) each; the log has
# the committee's largest force deviation and energy spread at every 20th step.
# Outputs exist already: to rerun, delete runs/simulation/npt_committee/p*/ first (or pass --resume to extend).
set -euo pipefail
cd "$(dirname "$0")/../../.."
for p in 3.44 15 30; do
  hqc-qiskit md runs/l2_hqc_cz_clip500_long --ensemble npt --pressure $p --temperature 3000 --steps 2000 \
     --log-every 20 --traj-every 100 --checkpoint-every 500 --pdamp 250 \
     --committee runs/l2_hqc_cz_clip500_seed1_long --committee runs/l2_hqc_cz_clip500_seed2_long \
     --out runs/simulation/npt_committee/p$p --no-progress
done
