"""Shots the penalty method needs to reach the g(r) accuracy plain Metropolis reaches at the most shots (issue 6).

    python benchmarks/mc_penalty_shots.py [--out runs/simulation/mc_study] [--steps 1500] [--shots 2000,10000,50000]

Runs (or, if its chains are already there, resumes and re-analyses) the study of
``hqc-qiskit mc-study``: an exact-energy MC chain as reference, a second exact chain with another
seed (statistical floor), and aer chains with plain and penalty acceptance at each shot count, all
from the same structure and seed. Reported: the g(r) distance of plain at the largest shot count,
the shots at which penalty reaches that distance (log interpolation) and their ratio (target <= 0.2).
When plain at the most shots is already within the statistical floor (two exact chains' distance),
that ratio cannot be read off, and the comparison is the shots each rule needs to reach the floor
(``ratio_at_floor``).
Output: benchmarks/results/mc_penalty_shots.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import write_results

from hqc_qiskit.checkpoint import load_model
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.mc_driver import MCOptions
from hqc_qiskit.quantum.backends import make_backend
from hqc_qiskit.sim_studies import describe_shots_study, mc_shots_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/study_readouts/small_hqc_cz_s0")
    ap.add_argument("--structures", default="data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz")
    ap.add_argument("--out", default="runs/simulation/mc_study")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--shots", default="2000,10000,50000")
    ap.add_argument("--delta", type=float, default=0.1)
    a = ap.parse_args()
    base = MCOptions(steps=a.steps, delta=a.delta, remeasure=True, sample_every=5)   # as hqc-qiskit mc-study
    model = load_model(a.model).double()
    atoms = read_structures(a.structures)[0]
    study = mc_shots_study(model, atoms, make_backend, [int(s) for s in a.shots.split(",")], base, Path(a.out))
    r = study["result"]
    for line in describe_shots_study(r):
        print(line)
    print("target: penalty / plain shots for the same g(r) distance <= 0.2")
    write_results("mc_penalty_shots", {"model": a.model, **r})


if __name__ == "__main__":
    main()
