#!/usr/bin/env bash
# README command A: install everything, train the small default model (runs/quick.yaml) on the shipped
# liquid-Si data, and print the test-set RMSE table. About 10 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
hqc-qiskit train runs/quick.yaml -o output_dir=runs/quick "$@"
