#!/usr/bin/env bash
# CMLP vs the five HQC readouts (issue 4): same data, split, batch, loss, optimizer, epochs; seeds 0 and 1.
# Two single-thread trainings at a time (2-core machine). Results: $OUT/<model>_s<seed>/ (resumes unfinished runs).
# Usage: [OUT=dir] [OVERRIDES="-o key=value ..."] bash runs/study_readouts.sh [parallel jobs, default 2]
#   default (the configs as shipped, decoupled weight decay): OUT=runs/study_readouts_decoupled
#   the first study (the paper's coupled L2; its cz seed-0 model is the one the hardware and simulation
#   studies use): OUT=runs/study_readouts OVERRIDES="-o train.decoupled_weight_decay=false"
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-2}
export OUT=${OUT:-runs/study_readouts_decoupled} OVERRIDES=${OVERRIDES:-}
mkdir -p "$OUT"
for seed in 0 1; do
  for model in small_cmlp small_hqc_basic small_hqc_cx small_hqc_cz small_hqc_qft_cx small_hqc_qft_cz; do
    echo "$model $seed"
  done
done | xargs -P "$jobs" -n 2 sh -c 'out=$OUT/$0_s$1; if [ -f $out/summary.json ]; then exit 0; fi;
  if [ -f $out/checkpoint.pt ]; then r=--resume; else r=; fi;
  hqc-qiskit train runs/$0.yaml -o seed=$1 -o output_dir=$out $OVERRIDES --no-progress $r > $OUT/$0_s$1.log 2>&1'
python -m hqc_qiskit.studies readouts "$OUT" --threshold 0.7
