#!/usr/bin/env bash
# The CUDA check of issue 7, for a session that is lent a GPU machine (docs/performance.md, "On a GPU").
# Here:   bash scripts/gpu_wheels.sh
# Here:   bash scripts/gpu_tree.sh slim   (what travels must stay under 64 MiB: the committed run outputs runs/*/,
#         196 MiB by 2026-12-06, leave the index for the call; `bash scripts/gpu_tree.sh size` prints the MiB)
# Here:   bash scripts/gpu_rehearsal.sh   (these steps on the CPU, on a copy of what would travel, with every module
#         the GPU machine lacks refused: 2 minutes here instead of device minutes lost to a missing file or wheel)
# There:  one device-tool call: command "bash scripts/gpu_check.sh", carry [".whl"], timeout_s 560 (the steps'
#         own limits add up to 120 + 90 + 60 + 100 + 140 = 510 s)
# Here:   bash scripts/gpu_tree.sh restore
# It runs the CUDA tests (CUDA = CPU for the exact engine, E/F of both readout kinds, training and
# checkpoints), the precision benchmark on CUDA (paper architecture: float32, TF32, bfloat16, autocast), a step
# of the paper HQC cz in one pass of 20 against passes of 4, and times training epochs of a fast named config and of
# the paper architecture on CUDA. Into $OUT (5 files; the tool brings back at most 8): gpu_check.log,
# mixed_precision_cuda.json, micro_batch_cuda.json, <config>_metrics.csv of both runs.
# HQC_GPU_REHEARSAL=1 (set by scripts/gpu_rehearsal.sh, here): the same steps on the CPU, 1 epoch of 20 structures,
# no wheels installed, the caller's PYTHONPATH kept, tests/test_cuda.py run CPU against CPU (its code, not CUDA's
# numbers): what the call needs, short of the GPU, is in place.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
RUNS=${RUNS:-/tmp/gpu_runs}   # the training runs' output directories (not brought back)
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
if [ -n "${HQC_GPU_REHEARSAL:-}" ]; then
    DEVICE=cpu; MAX_TRAIN=20; EPOCHS=1; GPU_NAME="'rehearsal on the CPU'"; RESULT=mixed_precision.json
    PASSES_CONFIG=small_hqc_cz   # the paper config's CPU steps would not fit the step's limit
    export HQC_CUDA_TEST_DEVICE=cpu   # tests/test_cuda.py runs its code CPU against CPU instead of skipping
else
    DEVICE=cuda; MAX_TRAIN=null; EPOCHS=; GPU_NAME="torch.cuda.get_device_name(0)"; RESULT=mixed_precision_cuda.json
    PASSES_CONFIG=hqc_cz
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
status=0
STARTED=$(mktemp)   # older than every file this script writes
python3 -c "import torch; print('torch', torch.__version__, $GPU_NAME)" 2>&1 | tee "$LOG" || exit 1
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee -a "$LOG" || status=1
timeout 90 python3 benchmarks/mixed_precision.py --device $DEVICE --n 4 --repeats 3 2>&1 | tee -a "$LOG" || status=1
# the benchmark's JSON of this run only (a committed one of the same name is older than the marker)
[ "benchmarks/results/$RESULT" -nt "$STARTED" ] && cp "benchmarks/results/$RESULT" "$OUT/" || status=1
# a step of 20 structures in one pass against passes of 4 (train.micro_batch_size: the paper configs set 4, 2x faster
# on the CPU; which is faster on the GPU is what this measures)
timeout 60 python3 benchmarks/micro_batch.py --configs $PASSES_CONFIG --micro 0,4 --rounds 1 --repeats 2 \
    --out micro_batch_$DEVICE 2>&1 | tee -a "$LOG" || status=1
[ "benchmarks/results/micro_batch_$DEVICE.json" -nt "$STARTED" ] && cp "benchmarks/results/micro_batch_$DEVICE.json" "$OUT/" || status=1
for run in "small_hqc_cz 5 100" "hqc_cz 1 140"; do   # config, epochs (unless EPOCHS), time limit (s)
    set -- $run
    epochs=${EPOCHS:-$2}
    echo "== train $1 on $DEVICE, $epochs epochs" | tee -a "$LOG"
    timeout "$3" python3 -m hqc_qiskit.cli train "runs/$1.yaml" -o "output_dir=$RUNS/$1" -o data.max_train=$MAX_TRAIN \
        -o train.device=$DEVICE -o "train.max_epochs=$epochs" -o train.warmup_steps=20 -o train.ema_warmup=true \
        -o model.reference_energies=fit_residual --no-progress 2>&1 | tee -a "$LOG" || status=1
    cp "$RUNS/$1/metrics.csv" "$OUT/$1_metrics.csv" 2>/dev/null || status=1
done
exit $status
