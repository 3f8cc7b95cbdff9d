#!/usr/bin/env bash
# MC study of docs/results.md "Simulation": small HQC-cz model, 2000 K, 5 atoms x N(0, 0.1 Å) moves,
# energies exact or shot-noisy (aer) at 500, 1e3, 2e3, 1e4, 5e4 shots, plain vs penalty acceptance, both energies
# measured afresh every step. Resumable (rerun after an interruption).
set -euo pipefail
cd "$(dirname "$0")/../.."
hqc-qiskit mc-study runs/study_readouts/small_hqc_cz_s0 --steps ${1:-1500} --shots 500,1000,2000,10000,50000 \
  --out runs/simulation/mc_study
