#!/usr/bin/env bash
# The CUDA check of issue 7, for a session that is lent a GPU machine (docs/performance.md, "On a GPU").
# Here:   bash scripts/gpu_wheels.sh
# There:  one device-tool call: command "bash scripts/gpu_check.sh", carry [".whl"], timeout_s 560 (the steps'
#         own limits add up to 510 s). What travels, the tracked tree and .whl/, must stay under 64 MiB
#         (session 18: 38.6 MB tracked after the finished readout studies' checkpoint.pt left the tree, 42.9 MB with
#         its two new runs, 18.6 MB
#         of wheels; session 17 had 47.7 + 18.6 MB, under 1 MB of margin). Check with:
#         git ls-files -z | xargs -0 du -cb | tail -1; du -sb .whl
# It runs the CUDA tests (CUDA = CPU for the exact engine, E/F of both readout kinds, training and
# checkpoints), the precision benchmark on CUDA (paper architecture: float32, TF32, bfloat16, autocast),
# and times training epochs of a fast named config and of the paper architecture on CUDA. Into $OUT (4 files;
# the tool brings back at most 8): gpu_check.log, mixed_precision_cuda.json, <config>_metrics.csv of both runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
status=0
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee "$LOG" || exit 1
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee -a "$LOG" || status=1
timeout 90 python3 benchmarks/mixed_precision.py --device cuda --n 4 --repeats 3 2>&1 | tee -a "$LOG" || status=1
cp benchmarks/results/mixed_precision_cuda.json "$OUT/" 2>/dev/null
for run in "small_hqc_cz 5 100" "hqc_cz 1 200"; do   # config, epochs, time limit (s)
    set -- $run
    echo "== train $1 on CUDA, $2 epochs" | tee -a "$LOG"
    timeout "$3" python3 -m hqc_qiskit.cli train "runs/$1.yaml" -o "output_dir=/tmp/gpu_runs/$1" -o data.max_train=null \
        -o train.device=cuda -o "train.max_epochs=$2" -o train.warmup_steps=20 -o train.ema_warmup=true \
        -o model.reference_energies=fit_residual --no-progress 2>&1 | tee -a "$LOG" || status=1
    cp "/tmp/gpu_runs/$1/metrics.csv" "$OUT/$1_metrics.csv" 2>/dev/null
done
exit $status
