#!/usr/bin/env bash
# Long exact-engine chains for docs/results.md "Sampling cost: MD or MC on a QPU": the integrated autocorrelation
# time of the potential energy per step of Langevin MD (0.5 fs, friction 0.01/fs, as runs/simulation/shot_md.sh)
# and of Metropolis MC (5 atoms per move; the MC study's tuned 0.1 Å and the paper's 0.015 Å), on the shipped small
# HQC-cz model at 2000 K from the first test frame. tau is a property of the sampler and the potential; the
# shot-based chains of shot_md.sh and mc_study.sh check that shot noise does not change it much, and
# docs/evidence/sampling_cost.py turns tau x QPU seconds per step into QPU time per independent sample.
# Stream c: the MC setting a user gets by default on a QPU (penalty acceptance, the current energy reused) on
# ideal Aer at 2000 shots per circuit with the tuned moves, long enough for its own tau (30,000 steps: shot noise
# with reuse makes its tau 1.5x the exact chain's; it first ran 10,000 steps and was extended with --resume).
# Stream d: a second chain with the paper's moves (its tau is long; the two chains are pooled).
# Stream e: stream c's setting with --remeasure (both energies measured every step), for docs/evidence/mc_remeasure.py:
# the fresh estimates of each step's starting state against the exact energies of those states.
# Resumable (rerun after an interruption). Usage: bash runs/simulation/sampling_cost.sh [a|b|c|d|e]  (five streams;
# run them at once with OMP_NUM_THREADS=1), default all.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/study_readouts/small_hqc_cz_s0
OUT=runs/simulation/sampling_cost
resume_flag() { [ -f "$1" ] && echo "--resume" || true; }
STREAM=${1:-all}
if [ "$STREAM" = all ] || [ "$STREAM" = a ]; then
  hqc-qiskit mc $RUN --temperature 2000 --delta 0.1 --steps 20000 --sample-every 20 --out $OUT/mc_tuned_exact \
    --no-progress $(resume_flag $OUT/mc_tuned_exact/mc_checkpoint.json)
  hqc-qiskit mc $RUN --temperature 2000 --delta 0.015 --steps 40000 --sample-every 50 --out $OUT/mc_paper_exact \
    --no-progress $(resume_flag $OUT/mc_paper_exact/mc_checkpoint.json)
fi
if [ "$STREAM" = all ] || [ "$STREAM" = b ]; then
  hqc-qiskit md $RUN --temperature 2000 --thermostat langevin --steps 20000 --traj-every 20 \
    --out $OUT/md_langevin_exact --no-progress $(resume_flag $OUT/md_langevin_exact/md_checkpoint.json)
fi
if [ "$STREAM" = all ] || [ "$STREAM" = c ]; then
  hqc-qiskit mc $RUN --temperature 2000 --delta 0.1 --steps 30000 --sample-every 20 --backend aer --shots 2000 \
    --out $OUT/mc_tuned_aer_2000 --no-progress $(resume_flag $OUT/mc_tuned_aer_2000/mc_checkpoint.json)
fi
if [ "$STREAM" = all ] || [ "$STREAM" = d ]; then
  hqc-qiskit mc $RUN --temperature 2000 --delta 0.015 --steps 40000 --sample-every 50 --seed 1 \
    --out $OUT/mc_paper_exact_seed1 --no-progress $(resume_flag $OUT/mc_paper_exact_seed1/mc_checkpoint.json)
fi
if [ "$STREAM" = all ] || [ "$STREAM" = e ]; then
  hqc-qiskit mc $RUN --temperature 2000 --delta 0.1 --steps 6000 --sample-every 20 --backend aer --shots 2000 \
    --remeasure --out $OUT/mc_tuned_aer_2000_remeasure --no-progress \
    $(resume_flag $OUT/mc_tuned_aer_2000_remeasure/mc_checkpoint.json)
fi
