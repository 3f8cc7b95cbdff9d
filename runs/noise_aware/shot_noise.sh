#!/usr/bin/env bash
# Shot noise of the noise-aware Eagle models (docs/results.md "Training the circuits through the noise"): energy
# and parameter-shift forces of the first test frame with 10,000 shots per circuit on the snapshot they were tuned
# for, for the model with its circuits kept and the one with its circuits trained through the noise; same seed.
# Writes runs/noise_aware/shot_noise/<model>.json (about 1.5 min each on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
mkdir -p runs/noise_aware/shot_noise
for model in l2_hqc_cz_eagle l2_hqc_cz_eagle_circuits; do
    "$HQC" energy "runs/noise_aware/$model" --structure data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz \
        --backend aer-noise:fake_brisbane@ibm_eagle_compact --shots 10000 --forces --seed 1 \
        --json "runs/noise_aware/shot_noise/$model.json"
done
