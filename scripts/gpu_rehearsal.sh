#!/usr/bin/env bash
# Rehearse the CUDA check here, on the CPU, before spending device time on it: copy exactly what the device tool
# would send (tracked and untracked-not-ignored files; run `bash scripts/gpu_tree.sh slim` first to see the slim
# tree) into an empty folder, and run scripts/gpu_check.sh there with HQC_GPU_REHEARSAL=1 (CPU, 1 epoch of 20
# structures), this checkout's .venv, and an import guard (scripts/gpu_rehearsal/sitecustomize.py) that refuses
# every module the GPU machine would lack: neither in its image nor among the wheels of .whl/.
# It stops first if what would travel is over the device tool's 64 MiB (gpu_tree.sh slim not run).
# Exit status: gpu_check.sh's. Its log is printed at the end.
# HQC_REHEARSAL_PATH=DIR puts DIR's modules before the venv's, to stand in for the GPU machine's versions: it has
# numpy 2.5.2 (pyproject pins <2.3); with numpy 2.4.6, the newest for Python 3.11 (pip install --no-deps --target
# DIR numpy==2.4.6), the rehearsal passes too (session 41); with torch 2.11.0, the GPU machine's (pip install --target DIR
# torch==2.11.0 numpy==2.4.6: a CUDA build, 4.7 GB, that runs on the CPU), it passes as well (session 42).
#   bash scripts/gpu_wheels.sh && bash scripts/gpu_tree.sh slim && bash scripts/gpu_rehearsal.sh; bash scripts/gpu_tree.sh restore
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ -d .whl ] || { echo "no .whl/: run bash scripts/gpu_wheels.sh first" >&2; exit 1; }
bash scripts/gpu_tree.sh size || { echo "too large: bash scripts/gpu_tree.sh slim first" >&2; exit 1; }
WORK=$(mktemp -d /tmp/gpu_rehearsal.XXXXXX)
mkdir -p "$WORK/tree"
bash scripts/gpu_tree.sh files | xargs -0 cp --parents -t "$WORK/tree" || exit 1
echo "rehearsing in $WORK/tree"
cd "$WORK/tree"
PATH="$ROOT/.venv/bin:$PATH" PYTHONPATH="$ROOT/scripts/gpu_rehearsal:${HQC_REHEARSAL_PATH:+$HQC_REHEARSAL_PATH:}$WORK/tree" HQC_GPU_WHEELS="$ROOT/.whl" \
    HQC_GPU_REHEARSAL=1 OUT="$WORK/out" RUNS="$WORK/runs" bash scripts/gpu_check.sh > /dev/null 2>&1
status=$?
cat "$WORK/out/gpu_check.log"
echo "gpu_check.sh rehearsal: exit status $status; files for \$OUT: $(ls "$WORK/out" | tr '\n' ' ')"
exit $status
