#!/usr/bin/env bash
# Noise-aware fine-tuning of runs/l2_hqc_cz_long on two device snapshots (docs/results.md "Noise-aware
# fine-tuning"). Each: 3 noisy readouts simulated (3 x 6561 circuits, ~2.5 min), then 25 epochs of training
# through them (one thread each), then the test report (source / fine-tuned x exact / noisy readouts, also at
# 0.8x and 1.25x the error rates: calibration drift). On a finished run the same command writes only the report.
# Usage: bash runs/noise_aware/run.sh [eagle|heron|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
run() {   # name backend
    "$HQC" noise-aware runs/l2_hqc_cz_long --backend "$2" --out "runs/noise_aware/$1" --epochs 25 --drift-scales 0.8,1.25 \
        $( [ -f "runs/noise_aware/$1/checkpoint.pt" ] && echo --resume )
}
case "${1:-all}" in
    eagle) run l2_hqc_cz_eagle aer-noise:fake_brisbane@ibm_eagle_compact ;;
    heron) run l2_hqc_cz_heron aer-noise:fake_torino@ibm_heron_compact ;;
    all) run l2_hqc_cz_eagle aer-noise:fake_brisbane@ibm_eagle_compact
         run l2_hqc_cz_heron aer-noise:fake_torino@ibm_heron_compact ;;
    *) echo "usage: $0 [eagle|heron|all]" >&2; exit 2 ;;
esac
