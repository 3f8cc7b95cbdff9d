#!/usr/bin/env bash
# docs/results.md "Away from the training density": CP2K on test and training frames at 4 other densities, a
# fine-tune of runs/small_l2_hqc_cz_long with the training ones (energy, forces, stress) and its control, and the
# comparison of every model with DFT there. Each step skips what is done (CP2K results, finished runs), so rerun
# after an interruption. CP2K: bash scripts/install_cp2k.sh (about 3-4 min per single point on 2 cores).
# Usage: bash runs/density/run.sh [dft|train|compare|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
HQC=${HQC:-.venv/bin/hqc-qiskit}
dft() {
    "$PY" docs/evidence/cp2k_label_noise.py run --frames 0,1          # the test frames at the data's density
    "$PY" docs/evidence/cp2k_density.py run --frames 0,1 --scales 0.97,1.03,0.94
    # the expanded x1.06 frame's OT converges slowly (~10 min a point): test frame 0 only, no training frames
    "$PY" docs/evidence/cp2k_density.py run --frames 0 --scales 1.06
    "$PY" docs/evidence/cp2k_density.py run --file train --frames 0,1 --scales 0.97,1.03,0.94
    "$PY" docs/evidence/cp2k_density.py labels
}
train_one() {   # config run_dir
    if [ -f "$2/summary.json" ]; then echo "$2: done"; return; fi
    "$HQC" train "$1" --no-progress $( [ -f "$2/checkpoint.pt" ] && echo --resume )
}
train() {   # the fine-tune and its control side by side, one thread each
    # the training file the fine-tune read (committed, so that its config reloads to its data; remade if missing)
    [ -f runs/density/train_plus_density.extxyz.gz ] || "$HQC" data merge data/si_liquid_3000K/si_liquid_3000K.train.extxyz.gz \
        docs/evidence/cp2k_density_train_frames.extxyz --repeat 1,10 --out runs/density/train_plus_density.extxyz.gz
    train_one runs/density/finetune.yaml runs/density/small_l2_hqc_cz_density > runs/density/finetune.log 2>&1 &
    local finetune=$!
    train_one runs/density/control.yaml runs/density/small_l2_hqc_cz_density_control > runs/density/control.log 2>&1
    wait $finetune
}
compare() {
    "$PY" docs/evidence/cp2k_density.py compare runs/quick runs/small_cmlp_long runs/small_hqc_cz_long \
        runs/small_l2_cmlp_long runs/small_l2_hqc_cz_long runs/l2_cmlp_long runs/l2_hqc_cz_long runs/paper_cmlp \
        runs/density/small_l2_hqc_cz_density runs/density/small_l2_hqc_cz_density_control --committees
}
case "${1:-all}" in
    dft) dft ;;
    train) train ;;
    compare) compare ;;
    all) dft; train; compare ;;
    *) echo "usage: $0 [dft|train|compare|all]"; exit 2 ;;
esac
