#!/usr/bin/env bash
# CMLP vs the five HQC readouts (issue 4): same data, split, batch, loss, optimizer, epochs; seeds 0 and 1.
# Two single-thread trainings at a time (2-core machine). Results: runs/study_readouts/<model>_s<seed>/.
# Usage: bash runs/study_readouts.sh [parallel jobs, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-2}
for seed in 0 1; do
  for model in small_cmlp small_hqc_basic small_hqc_cx small_hqc_cz small_hqc_qft_cx small_hqc_qft_cz; do
    echo "$model $seed"
  done
done | xargs -P "$jobs" -n 2 sh -c 'out=runs/study_readouts/$0_s$1; if [ -f $out/summary.json ]; then exit 0; fi;
  if [ -f $out/checkpoint.pt ]; then r=--resume; else r=; fi;
  hqc-qiskit train runs/$0.yaml -o seed=$1 -o output_dir=$out --no-progress $r > runs/study_readouts/$0_s$1.log 2>&1'
python -m hqc_qiskit.studies readouts runs/study_readouts
