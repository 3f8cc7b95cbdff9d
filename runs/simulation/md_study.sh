#!/usr/bin/env bash
# MD study of docs/results.md "Simulation": every small model (seed 0) of runs/study_readouts,
# NVT 2000 K (Nose-Hoover chain, 0.5 fs) and NVE from the first test frame, g(r) vs the DFT frames.
# Resumable: rerun the script after an interruption (each run continues from its checkpoint).
# Usage: bash runs/simulation/md_study.sh [NVT_STEPS] [NVE_STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
NVT=${1:-2000}; NVE=${2:-1000}
DFT=data/si_liquid_3000K/si_liquid_3000K.extxyz.gz
for m in small_cmlp small_hqc_basic small_hqc_cx small_hqc_cz small_hqc_qft_cx small_hqc_qft_cz; do
  run=runs/study_readouts/${m}_s0; out=runs/simulation/md/$m
  for spec in "nvt 2000 $NVT" "nve 2000 $NVE"; do
    set -- $spec
    dir=$out/$1_$2K; resume=""; [ -f $dir/md_checkpoint.json ] && resume="--resume"
    hqc-qiskit md $run --ensemble $1 --temperature $2 --steps $3 --out $dir --no-progress $resume
  done
  hqc-qiskit rdf $out/nvt_2000K/md_traj.extxyz --ref $DFT --label "$m NVT 2000 K" --out $out/nvt_2000K/rdf_vs_dft
done
# like-for-like with the 3000 K DFT data
for m in small_cmlp small_hqc_cz; do
  dir=runs/simulation/md/$m/nvt_3000K; resume=""; [ -f $dir/md_checkpoint.json ] && resume="--resume"
  hqc-qiskit md runs/study_readouts/${m}_s0 --temperature 3000 --steps $NVT --out $dir --no-progress $resume
  hqc-qiskit rdf $dir/md_traj.extxyz --ref $DFT --label "$m NVT 3000 K" --out $dir/rdf_vs_dft
done
