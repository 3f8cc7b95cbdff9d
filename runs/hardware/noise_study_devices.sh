#!/usr/bin/env bash
# Noise study on device snapshots: the 8-qubit ansaetze (seed-0 models of the decoupled readout study), one
# test structure, expectation values (no shot noise), every mitigation, noise scales 0.3 and 1 (1 = the
# snapshot's own calibration).
#   Eagle r3 (FakeBrisbane, ECR): profiles ibm_eagle_compact and ibm_eagle_compact_dd (X-X dynamical decoupling)
#   Heron r1 (FakeTorino, CZ):    profile ibm_heron_compact
# Results: runs/hardware/noise_study_devices/<device>/<ansatz>/noise_study.{json,md,png}; rerunning with the
# same arguments and --resume (appended below) computes only missing points.
# Usage: bash runs/hardware/noise_study_devices.sh [ANSATZ ...]   (from the repository root)
set -euo pipefail
ansaetze=("${@:-basic cx cz}")
for a in ${ansaetze[@]}; do
  model="runs/study_readouts_decoupled/small_hqc_${a}_s0"
  hqc-qiskit noise-study "$model" --n-structures 1 --noise fake_brisbane \
    --profiles ibm_eagle_compact,ibm_eagle_compact_dd --scales 0.3,1 --out "runs/hardware/noise_study_devices/eagle/${a}" --resume
  hqc-qiskit noise-study "$model" --n-structures 1 --noise fake_torino \
    --profiles ibm_heron_compact --scales 0.3,1 --out "runs/hardware/noise_study_devices/heron/${a}" --resume
done
