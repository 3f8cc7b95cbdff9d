#!/usr/bin/env bash
# Calibrating the noise scale (docs/results.md "Calibrating the noise scale"): the Eagle noise-aware model's
# readout circuits (runs/noise_aware/l2_hqc_cz_eagle; 32 per readout from test frame 0, 4000 shots each) measured
# on stand-ins for a device, each fitted with the Eagle snapshot's noise scale:
#   eagle_x<s>: the snapshot itself with every error rate times s (drift; s = 0.8, 1, 1.25; the true scale is known)
#   thermal:    another noise model (parametric: uniform depolarizing, T1/T2 relaxation and readout errors on
#               every qubit) standing in for a device whose noise differs in kind from the snapshot
#   runtime_fake_brisbane: the hardware path offline: qiskit-ibm-runtime's Sampler in local mode on the whole
#               FakeBrisbane chip (Aer with the full-device noise model), circuits compiled with the same profile
# then the model re-tuned at the scale fitted for x1.25 (10 epochs, ~20 min on 2 cores), reported at the true 1.25.
# drift: a stand-in device that drifted per qubit and per gate (noise_models/brisbane_drift_study.yaml, written by
# make_drifted_snapshot.py with the snapshot writer of `hqc-qiskit noise-snapshot`): calibrated against the old
# snapshot (drifted), the model re-tuned on the new snapshot (drift_retuned, 10 epochs), and the scale-re-tuned
# model of the x1.25 study evaluated on the drifted device (cross_evaluate.py).
# On finished steps the same command only prints; delete a directory to redo it.
# Usage: bash runs/noise_calibration/run.sh [calibrate|retune|drift|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
MODEL=runs/noise_aware/l2_hqc_cz_eagle
SNAPSHOT=aer-noise:fake_brisbane@ibm_eagle_compact
OUT=runs/noise_calibration
calibrate() {   # name backend scale seed [more options]
    [ -f "$OUT/$1/noise_calibration.json" ] && { echo "$OUT/$1: done"; return; }
    "$HQC" noise-calibrate "$MODEL" --backend "$2" --noise-scale "$3" --seed "$4" --out "$OUT/$1" "${@:5}"
}
retune() {
    local fit
    fit=$(python3 -c "import json; print(round(json.load(open('$OUT/eagle_x1.25/noise_calibration.json'))['fitted_scale'], 3))")
    "$HQC" noise-aware "$MODEL" --backend "$SNAPSHOT" --noise-scale "$fit" --out "$OUT/eagle_retuned" --epochs 10 \
        --drift-scales 1.25 $( [ -f "$OUT/eagle_retuned/checkpoint.pt" ] && echo --resume )
}
step=${1:-all}
case "$step" in calibrate|retune|drift|all) ;; *) echo "usage: $0 [calibrate|retune|drift|all]" >&2; exit 2 ;; esac
if [ "$step" = calibrate ] || [ "$step" = all ]; then
    calibrate eagle_x0.8 "$SNAPSHOT" 0.8 1
    calibrate eagle_x1 "$SNAPSHOT" 1 2
    calibrate eagle_x1.25 "$SNAPSHOT" 1.25 3
    calibrate thermal aer-noise:thermal@ibm_eagle_compact 1 4
    calibrate runtime_fake_brisbane fake_brisbane 1 5 --profile ibm_eagle_compact
fi
if [ "$step" = retune ] || [ "$step" = all ]; then retune; fi
if [ "$step" = drift ] || [ "$step" = all ]; then
    [ -f noise_models/brisbane_drift_study.yaml ] || .venv/bin/python runs/noise_calibration/make_drifted_snapshot.py
    calibrate drifted aer-noise:brisbane_drift_study 1 6
    "$HQC" noise-aware "$MODEL" --backend aer-noise:brisbane_drift_study --out "$OUT/drift_retuned" --epochs 10 \
        $( [ -f "$OUT/drift_retuned/checkpoint.pt" ] && echo --resume )
    .venv/bin/python runs/noise_calibration/cross_evaluate.py
fi
