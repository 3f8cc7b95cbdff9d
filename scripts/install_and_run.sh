#!/usr/bin/env bash
# README command A: install everything, train the small default model (runs/quick.yaml) on the shipped
# liquid-Si data, print the test-set RMSE table, and put the run next to the shipped reference run
# runs/quick/ (which it leaves untouched). About 10 minutes on 2 CPU cores.
# Writes runs/quick_local/ (git-ignored), starting it over on every call; extra arguments go to `hqc-qiskit train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
hqc-qiskit train runs/quick.yaml -o output_dir=runs/quick_local --overwrite "$@"
echo
echo "Your run (runs/quick_local) beside the shipped reference run (runs/quick); same config and seed:"
python -m hqc_qiskit.studies sizes runs/quick runs/quick_local
