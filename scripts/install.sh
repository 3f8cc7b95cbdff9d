#!/usr/bin/env bash
# Create .venv and install hqc-qiskit with its pinned dependencies (CPU torch). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first, pinned: 2.13.0 is the CPU build kept on the project machines (elsewhere pip may fetch a larger build)
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
