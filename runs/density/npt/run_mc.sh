#!/usr/bin/env bash
# Isobaric Monte Carlo (hqc-qiskit mc --ensemble npt) at 3000 K and 10 GPa, exact energies, from the same test frame
# as the NPT MD runs of run.sh, with the models that drove two of them: the ZBL fine-tune (zbl_p10) and the fine-tune
# with ZBL and pulled-pair DFT frames (closepair_p10). Two different samplers of the same ensemble of the same model
# must give the same density (docs/results.md "Isobaric Monte Carlo"). 100,000 steps each (first run for 40,000, then
# continued with --resume: the same chain), the first 2,000 adapting delta and the volume step; one thread each, side
# by side (about 20 minutes on the 2-core machine); a killed run continues with --resume (this script adds it and
# unpacks the log and the samples, gzipped afterwards: 12 MB, 2.3 MB packed).
set -euo pipefail
cd "$(dirname "$0")/../../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
STEPS=100000
one() {   # run_dir name
    local out=runs/density/npt/$2_p10_mc
    if grep -qs "\"steps\": $STEPS," "$out/mc_summary.json"; then echo "$out: done"; return; fi
    for f in "$out/mc_log.csv.gz" "$out/mc_traj.extxyz.gz"; do if [ -f "$f" ]; then gunzip -f "$f"; fi; done
    OMP_NUM_THREADS=1 "$HQC" mc "$1" --ensemble npt --pressure 10 --temperature 3000 \
        --steps $STEPS --adapt-steps 2000 --delta 0.05 --sample-every 200 --checkpoint-every 500 --out "$out" \
        --no-progress $( [ -f "$out/mc_checkpoint.json" ] && echo --resume ) > "$out.log" 2>&1
    gzip -f "$out/mc_log.csv" "$out/mc_traj.extxyz"
}
one runs/density/small_l2_hqc_cz_density_zbl zbl & pid=$!
one runs/density/small_l2_hqc_cz_density_closepair_dense_zbl closepair
wait $pid
