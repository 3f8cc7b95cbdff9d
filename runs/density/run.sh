#!/usr/bin/env bash
# docs/results.md "Away from the training density": CP2K on test, training and validation frames at 4 other
# densities; fine-tunes of runs/small_l2_hqc_cz_long with the training ones (energy, forces, stress; without and with
# the x1.06 ones, and validated on the validation ones too; the last also with the ZBL pair repulsion, "Short-range
# repulsion") and their control, seeds 0 and 1; and the comparison of every model with DFT there. Each step skips
# what is done (CP2K results, finished runs), so rerun after an interruption. CP2K: bash scripts/install_cp2k.sh
# (3-10 min per single point on 2 cores).
# closepair: CP2K on training frames with their closest pair pulled to 1.4-1.8 Å and fine-tunes (with and without
# ZBL) that learn from them ("Short-range repulsion").
# Usage: bash runs/density/run.sh [dft|train|closepair|compare|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
HQC=${HQC:-.venv/bin/hqc-qiskit}
dft() {
    "$PY" docs/evidence/cp2k_label_noise.py run --frames 0,1          # the test frames at the data's density
    "$PY" docs/evidence/cp2k_density.py run --frames 0,1 --scales 0.97,1.03,0.94
    "$PY" docs/evidence/cp2k_density.py run --frames 0,1 --scales 1.06        # slower: 5-10 min a point
    "$PY" docs/evidence/cp2k_density.py run --file train --frames 0,1 --scales 0.97,1.03,0.94,1.06
    "$PY" docs/evidence/cp2k_density.py run --file val --frames 0,1 --scales 0.94,0.97,1.03,1.06
    "$PY" docs/evidence/cp2k_density.py labels
    "$PY" docs/evidence/cp2k_density.py labels --file val
}
train_one() {   # config run_dir [hqc-qiskit train options]: logs to <run_dir>.log (a finished run is left alone)
    if [ -f "$2/summary.json" ]; then echo "$2: done"; return; fi
    "$HQC" train "$1" --no-progress "${@:3}" $( [ -f "$2/checkpoint.pt" ] && echo --resume ) > "$2.log" 2>&1
}
seed1() {   # config name: the same run with seed 1 (another order of the batches) in runs/density/<name>_seed1
    train_one "$1" "runs/density/$2_seed1" -o seed=1 -o name="$2_seed1" -o output_dir="runs/density/$2_seed1"
}
merged() {   # out base which scales repeat: base + the DFT train (val) frames at these scales, repeated
    [ -f "$1" ] && return   # committed, so that the fine-tunes' configs reload to their data; remade only if missing
    local labels; labels=$(mktemp --suffix .extxyz)
    "$PY" docs/evidence/cp2k_density.py labels --file "$3" --scales "$4" --out "$labels"
    "$HQC" data merge "$2" "$labels" --repeat "1,$5" --out "$1"
    rm -f "$labels"
}
train() {   # the fine-tunes and the control with seeds 0 and 1, two side by side, one thread each (10-15 min a run)
    local d=runs/density pid data=data/si_liquid_3000K/si_liquid_3000K
    merged $d/train_plus_density.extxyz.gz $data.train.extxyz.gz train 0.94,0.97,1.03 10
    merged $d/train_plus_density_wide.extxyz.gz $data.train.extxyz.gz train 0.94,0.97,1.03,1.06 10
    merged $d/val_plus_density.extxyz.gz $data.val.extxyz.gz val 0.94,0.97,1.03,1.06 1
    train_one $d/finetune.yaml $d/small_l2_hqc_cz_density & pid=$!
    train_one $d/control.yaml $d/small_l2_hqc_cz_density_control; wait $pid
    train_one $d/finetune_wide.yaml $d/small_l2_hqc_cz_density_wide & pid=$!
    seed1 $d/control.yaml small_l2_hqc_cz_density_control; wait $pid
    seed1 $d/finetune.yaml small_l2_hqc_cz_density & pid=$!
    seed1 $d/finetune_wide.yaml small_l2_hqc_cz_density_wide; wait $pid
    # validated on stress-labelled frames too, so that best_model.pt sees the stress fit (docs/training.md)
    train_one $d/finetune_wide_valstress.yaml $d/small_l2_hqc_cz_density_wide_valstress & pid=$!
    seed1 $d/finetune_wide_valstress.yaml small_l2_hqc_cz_density_wide_valstress; wait $pid
    # the same with the ZBL pair repulsion (model.pair_repulsion: zbl; docs/results.md "Short-range repulsion")
    train_one $d/finetune_zbl.yaml $d/small_l2_hqc_cz_density_zbl & pid=$!
    seed1 $d/finetune_zbl.yaml small_l2_hqc_cz_density_zbl; wait $pid
}
closepair() {   # DFT on training frames with a pulled pair, the fine-tunes that learn from them, the scans again
    local d=runs/density pid labels
    "$PY" docs/evidence/cp2k_close_pair.py run --file train      # 15 single points, 3-10 min each on 2 cores
    for pair_set in "closepair 1.5,1.7" "closepair_dense 1.4,1.5,1.6,1.7,1.8"; do
        set -- $pair_set
        [ -f $d/train_plus_density_$1.extxyz.gz ] && continue
        labels=$(mktemp --suffix .extxyz)
        "$PY" docs/evidence/cp2k_close_pair.py labels --distances "$2" --out "$labels"
        "$HQC" data merge $d/train_plus_density_wide.extxyz.gz "$labels" --repeat 1,10 --out $d/train_plus_density_$1.extxyz.gz
        rm -f "$labels"
    done
    train_one $d/finetune_closepair_zbl.yaml $d/small_l2_hqc_cz_density_closepair_zbl & pid=$!
    seed1 $d/finetune_closepair_zbl.yaml small_l2_hqc_cz_density_closepair_zbl; wait $pid
    train_one $d/finetune_closepair.yaml $d/small_l2_hqc_cz_density_closepair & pid=$!
    seed1 $d/finetune_closepair.yaml small_l2_hqc_cz_density_closepair; wait $pid
    train_one $d/finetune_closepair_dense_zbl.yaml $d/small_l2_hqc_cz_density_closepair_dense_zbl & pid=$!
    seed1 $d/finetune_closepair_dense_zbl.yaml small_l2_hqc_cz_density_closepair_dense_zbl; wait $pid
    "$PY" docs/evidence/cp2k_close_pair.py compare
}
compare() {
    "$PY" docs/evidence/cp2k_density.py compare runs/quick runs/small_cmlp_long runs/small_hqc_cz_long \
        runs/small_l2_cmlp_long runs/small_l2_hqc_cz_long runs/l2_cmlp_long runs/l2_hqc_cz_long runs/paper_cmlp \
        runs/density/small_l2_hqc_cz_density{,_control,_wide,_wide_valstress,_zbl}{,_seed1} \
        runs/density/small_l2_hqc_cz_density{,_control,_wide}@last --committees
}
case "${1:-all}" in
    dft) dft ;;
    train) train ;;
    closepair) closepair ;;
    compare) compare ;;
    all) dft; train; closepair; compare ;;
    *) echo "usage: $0 [dft|train|closepair|compare|all]"; exit 2 ;;
esac
