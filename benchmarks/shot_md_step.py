"""One step of MD on measured forces: the force batch on `aer` with its output distributions from the exact
engine (the default) against Aer's statevector (``--noisy-engine aer``), and the exact engine's forces.

    python benchmarks/shot_md_step.py [--model runs/study_readouts/small_hqc_cz_s0] [--shots 100] [--repeats 3]

All three on the same model and 64-atom structure, side by side in one process (best of N, after a warm-up):
the shot-based force evaluation (every readout circuit and its 2n parameter-shifted copies sampled, forces
by one backward pass, the noise probe included, as `hqc-qiskit md --backend aer` does per step) and the exact
engine's energy + forces. Reported: seconds of each and the ratios.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import best_time, write_results

from hqc_qiskit.checkpoint import load_model
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.quantum.backends import make_backend
from hqc_qiskit.quantum.circuit_inputs import structure_graph
from hqc_qiskit.quantum.shot_forces import estimate_forces, force_problem


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/study_readouts/small_hqc_cz_s0")
    p.add_argument("--structures", default="data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz")
    p.add_argument("--shots", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    model = load_model(a.model).double()
    atoms = read_structures(a.structures)[0]
    rng = np.random.default_rng(0)

    def shot_step(backend):
        return lambda: estimate_forces(model, atoms, backend, a.shots, rng=rng, uncertainty=False)

    def exact_step():
        return model(structure_graph(model, atoms), compute_forces=True)["forces"]

    circuits = len(force_problem(model, atoms, uncertainty=False).combined)
    ours = best_time(shot_step(make_backend("aer")), a.repeats)
    aer_sv = best_time(shot_step(make_backend("aer", engine="aer")), a.repeats)
    exact = best_time(exact_step, a.repeats)
    print(f"{len(atoms)} atoms, {circuits} circuits per force evaluation, {a.shots} shots each")
    print(f"aer (exact-engine distributions): {ours:.3f} s   aer (Aer statevector): {aer_sv:.3f} s   "
          f"exact engine: {exact:.3f} s")
    print(f"ratios: aer / aer statevector {ours / aer_sv:.3f}, aer / exact {ours / exact:.1f}")
    write_results("shot_md_step", {"model": a.model, "n_atoms": len(atoms), "circuits_per_step": circuits,
                                   "shots": a.shots, "repeats": a.repeats, "aer_s": ours,
                                   "aer_statevector_s": aer_sv, "exact_s": exact,
                                   "ratio_aer_over_aer_statevector": ours / aer_sv, "ratio_aer_over_exact": ours / exact})


if __name__ == "__main__":
    main()
