#!/usr/bin/env bash
# MD with the noisy device's readouts (expectation values: the many-shot limit), docs/results.md
# "Noise-aware fine-tuning": NVT 3000 K (Nose-Hoover chain, 0.5 fs, 2000 steps) from the first test frame,
# g(r) against the 3000 K DFT frames, for the source model on exact readouts (two velocity seeds), the same model on the Eagle
# snapshot's noisy readouts (two velocity seeds), and the noise-aware model on them (two seeds). Needs
# `bash runs/noise_aware/run.sh eagle` first. A killed run resumes; a finished or stopped one is kept.
# Usage: bash runs/noise_aware/md.sh [source|source_eagle|tuned_eagle|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
HQC=${HQC:-.venv/bin/hqc-qiskit}
DFT=data/si_liquid_3000K/si_liquid_3000K.extxyz.gz
TEST=data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz
md() {   # name model seed; a run with a summary is done (finished or stopped as unstable): kept as it is
    dir=runs/noise_aware/md/$1; resume=""
    [ -f "$dir/md_summary.json" ] && { echo "$dir: done"; return; }
    [ -f "$dir/md_checkpoint.json" ] && resume="--resume"
    "$HQC" md "$2" --structure $TEST --temperature 3000 --steps 2000 --seed "$3" --out "$dir" --no-progress $resume
    "$HQC" rdf "$dir/md_traj.extxyz" --ref $DFT --label "$1 NVT 3000 K" --out "$dir/rdf_vs_dft"
}
EAGLE=runs/noise_aware/l2_hqc_cz_eagle
case "${1:-all}" in
    source) md source_exact runs/l2_hqc_cz_long 0; md source_exact_seed1 runs/l2_hqc_cz_long 1 ;;
    source_eagle) md source_eagle $EAGLE/source_under_noise.pt 0; md source_eagle_seed1 $EAGLE/source_under_noise.pt 1 ;;
    tuned_eagle) md tuned_eagle $EAGLE 0; md tuned_eagle_seed1 $EAGLE 1 ;;
    all) "$0" source; "$0" source_eagle; "$0" tuned_eagle ;;
    *) echo "usage: $0 [source|source_eagle|tuned_eagle|all]" >&2; exit 2 ;;
esac
