#!/usr/bin/env bash
# Control of docs/results.md "Noise-aware fine-tuning": the same fine-tuning as runs/noise_aware/run.sh (25
# epochs from runs/l2_hqc_cz_long, lr 1e-3, fresh optimizer, no warm-up) on exact readouts, with the circuit
# weights trainable as in ordinary training: what the extra epochs alone give. Resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
out=runs/noise_aware/l2_hqc_cz_exact_control
"$HQC" train runs/l2_hqc_cz_long/config.yaml -o name=l2_hqc_cz_exact_control -o output_dir=$out \
    -o train.init_from=runs/l2_hqc_cz_long -o train.max_epochs=25 -o train.lr=0.001 -o train.warmup_steps=0 \
    -o train.max_minutes=null -o train.early_stopping_patience=null --no-progress \
    $( [ -f "$out/checkpoint.pt" ] && echo --resume )
