#!/usr/bin/env bash
# NPT at 3000 K and 10 GPa with the source model of the density fine-tunes (runs/small_l2_hqc_cz_long, too soft under
# compression) and with the fine-tune that matches DFT's pressure within 0.4 GPa from +20% to -16% density
# (runs/density/small_l2_hqc_cz_density_wide_valstress): how far the equation-of-state error moves the density an NPT
# run gives (docs/results.md "Away from the training density"); then the same fine-tune with the ZBL pair repulsion
# ("Short-range repulsion"). 6000 steps (3 ps) each, two side by side on one thread each (7-30 min a run on the
# 2-core machine); a killed run continues with --resume (this script adds it).
# zbl_p10 was run again in session 36 with the closest pair in every log row (min_pair_A, pair_margin_A): the same
# trajectory bit for bit. finetuned_p10_rerun is the fine-tune's run again (`one ... finetuned` with out
# runs/density/npt/finetuned_p10_rerun): it parts from finetuned_p10 at step 2060 by a last-digit energy difference
# (the code changed in between; MD is chaotic), so it is another sample of the same run (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/../../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
one() {   # run_dir name
    local out=runs/density/npt/$2_p10
    if [ -f "$out/md_summary.json" ]; then echo "$out: done"; return; fi
    OMP_NUM_THREADS=1 "$HQC" md "$1" --ensemble npt --pressure 10 --temperature 3000 --steps 6000 --pdamp 250 \
        --log-every 20 --traj-every 200 --checkpoint-every 500 --out "$out" --no-progress \
        $( [ -f "$out/md_checkpoint.json" ] && echo --resume ) > "$out.log" 2>&1
}
one runs/small_l2_hqc_cz_long source & pid=$!
one runs/density/small_l2_hqc_cz_density_wide_valstress finetuned
wait $pid
# the fine-tune with the ZBL pair repulsion (runs/density/finetune_zbl.yaml): do atoms still come closer than the
# training data's 1.87 Å? docs/results.md "Short-range repulsion"
one runs/density/small_l2_hqc_cz_density_zbl zbl
# the fine-tune with ZBL and 15 DFT frames with a pair pulled to 1.4-1.8 Å (runs/density/finetune_closepair_dense_zbl.yaml),
# seeds 0 and 1 side by side: does the density or the closest approach change once the short range is learned from DFT?
# docs/results.md "Short-range repulsion"
one runs/density/small_l2_hqc_cz_density_closepair_dense_zbl closepair & pid=$!
one runs/density/small_l2_hqc_cz_density_closepair_dense_zbl_seed1 closepair_seed1
wait $pid
