#!/usr/bin/env bash
# Noise study of the five readout ansaetze (seed-0 models of the decoupled readout study), one test
# structure, depolarizing noise model on the all-to-all 'ideal' profile, expectation values (no shot
# noise), every mitigation. Results: runs/hardware/noise_study_decoupled/<ansatz>/noise_study.{json,md,png};
# with --resume (appended below) a rerun keeps the committed points and computes only missing ones.
# Usage: bash runs/hardware/noise_study_ansaetze.sh [ANSATZ ...]   (from the repository root)
set -euo pipefail
ansaetze=("${@:-basic cx cz qft_cx qft_cz}")
for a in ${ansaetze[@]}; do
  hqc-qiskit noise-study "runs/study_readouts_decoupled/small_hqc_${a}_s0" --n-structures 1 --profiles ideal \
    --scales 0.3,1 --out "runs/hardware/noise_study_decoupled/${a}" --resume
done
