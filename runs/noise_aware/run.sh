#!/usr/bin/env bash
# Noise-aware fine-tuning of runs/l2_hqc_cz_long on two device snapshots (docs/results.md "Noise-aware
# fine-tuning"). Each: 3 noisy readouts computed, then 25 epochs of training through them (one thread each),
# then the test report (source / fine-tuned x exact / noisy readouts, also at 0.8x and 1.25x the error rates:
# calibration drift). The *_circuits variants train the circuit weights through the noise as well
# (--train-circuits; docs/results.md "Training the circuits through the noise"). Resumable; on a finished run
# the same command writes only the report.
# Usage: bash runs/noise_aware/run.sh [eagle|heron|all|eagle_circuits|heron_circuits|circuits]
set -euo pipefail
cd "$(dirname "$0")/../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
EAGLE=aer-noise:fake_brisbane@ibm_eagle_compact
HERON=aer-noise:fake_torino@ibm_heron_compact
run() {   # name backend [extra options]
    local name=$1 backend=$2
    shift 2
    "$HQC" noise-aware runs/l2_hqc_cz_long --backend "$backend" --out "runs/noise_aware/$name" --epochs 25 \
        --drift-scales 0.8,1.25 "$@" $( [ -f "runs/noise_aware/$name/checkpoint.pt" ] && echo --resume )
}
circuits() {   # name backend
    run "$1" "$2" --train-circuits -o train.num_threads=1
}
case "${1:-all}" in
    eagle) run l2_hqc_cz_eagle $EAGLE ;;
    heron) run l2_hqc_cz_heron $HERON ;;
    all) run l2_hqc_cz_eagle $EAGLE
         run l2_hqc_cz_heron $HERON ;;
    eagle_circuits) circuits l2_hqc_cz_eagle_circuits $EAGLE ;;
    heron_circuits) circuits l2_hqc_cz_heron_circuits $HERON ;;
    circuits) circuits l2_hqc_cz_eagle_circuits $EAGLE
              circuits l2_hqc_cz_heron_circuits $HERON ;;
    *) echo "usage: $0 [eagle|heron|all|eagle_circuits|heron_circuits|circuits]" >&2; exit 2 ;;
esac
