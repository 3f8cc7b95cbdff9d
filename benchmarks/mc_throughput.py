"""Monte Carlo steps per second on a 64-atom structure: exact energies vs shot-based (aer) energies.

    python benchmarks/mc_throughput.py [--model runs/study_readouts/small_hqc_cz_s0] [--steps 40] [--shots 50000]

The chains run side by side in one process with the same model, start and moves (the paper's 5
atoms x N(0, 0.015 Å)); reported: steps/s of each and the time ratios to exact. The aer energy
includes the classical forward pass, every readout circuit's output distribution (by the exact engine,
aer's default, and once more by Aer's statevector, ``--noisy-engine aer``) and the shot sampling; the
current state's energy is reused (one energy per step), as ``hqc-qiskit mc`` does.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import write_results

from hqc_qiskit.checkpoint import load_model
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.mc_driver import MCOptions, run_mc
from hqc_qiskit.quantum.backends import make_backend


def _steps_per_second(model, atoms, backend, opt) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run_mc(model, atoms, backend, MCOptions(**{**vars(opt), "steps": 2}), tmp + "/warm")   # warm caches
        t = time.perf_counter()
        run_mc(model, atoms, backend, opt, tmp + "/run")
        return opt.steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/study_readouts/small_hqc_cz_s0")
    p.add_argument("--structures", default="data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--shots", type=int, default=50000)
    a = p.parse_args()
    model = load_model(a.model).double()
    atoms = read_structures(a.structures)[0]
    opt = MCOptions(steps=a.steps, shots=a.shots, checkpoint_every=a.steps)
    exact = _steps_per_second(model, atoms, None, opt)
    aer = _steps_per_second(model, atoms, make_backend("aer"), opt)
    aer_sv = _steps_per_second(model, atoms, make_backend("aer", engine="aer"), opt)
    n_circuits = len(model.readouts) * len(atoms)
    print(f"{len(atoms)} atoms, {n_circuits} circuits per energy, {a.shots} shots each")
    print(f"exact: {exact:.2f} steps/s   aer: {aer:.2f} steps/s   aer with Aer's statevector: {aer_sv:.2f} steps/s")
    print(f"time ratios: aer/exact {exact / aer:.2f}, aer statevector/exact {exact / aer_sv:.2f}, "
          f"aer/aer statevector {aer_sv / aer:.3f}")
    write_results("mc_throughput", {"model": a.model, "n_atoms": len(atoms), "circuits_per_energy": n_circuits,
                                    "shots": a.shots, "steps": a.steps, "exact_steps_per_s": exact,
                                    "aer_steps_per_s": aer, "aer_statevector_steps_per_s": aer_sv,
                                    "time_ratio_aer_over_exact": exact / aer,
                                    "time_ratio_aer_statevector_over_exact": exact / aer_sv,
                                    "time_ratio_aer_over_aer_statevector": aer_sv / aer})


if __name__ == "__main__":
    main()
