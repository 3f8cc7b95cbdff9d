"""Noisy energy of one 64-atom structure (64 atoms x 5 layers = 320 circuits, 50,000 shots each):
reduced-register simulation (batched density-matrix engine, and Aer's density-matrix method on the
same reduced circuits) vs Aer's full-device simulation, and shots needed for a 2 meV/atom standard
error with optimal vs uniform allocation, plain and with ZNE (Richardson 1,3,5: the optimal allocation
also splits each circuit's shots over its folds).

    python benchmarks/noisy_energy.py [--full-circuits 4] [--models runs/study_readouts/small_hqc_*_s0]
    python benchmarks/noisy_energy.py --shots-only --models runs/study_readouts_decoupled/small_hqc_*

The full-device time is measured on --full-circuits circuits and scaled linearly to 320 (labelled
"extrapolated" in the JSON); running all 320 takes far longer than a session.
"""

from __future__ import annotations

import argparse
import glob
import time

import numpy as np
from _common import write_results
from qiskit_aer import AerSimulator

from hqc_qiskit.quantum.backends import CircuitBatch, RuntimeBackend, SimulatorBackend

SHOTS = 50000


def _batch(n_atoms=64, n_model_layers=5, seed=0) -> CircuitBatch:
    rng = np.random.default_rng(seed)
    groups = [(rng.uniform(-2, 2, (n_atoms, 8)), rng.uniform(0, 2 * np.pi, 24)) for _ in range(n_model_layers)]
    return CircuitBatch("cz", 8, 3, groups)


def reduced_time(profile: str, batch: CircuitBatch, engine: str = "batched") -> float:
    """Seconds for the noisy energy's circuits (simulation + shots) on the active qubits, by the batched
    density-matrix engine or by Aer's density-matrix method (``engine="aer"``); same distributions (tested).
    The engine's one-off compilation of the circuit with its noise is included."""
    backend = SimulatorBackend("fake_brisbane", profile, engine=engine)
    backend.simulator(batch)                 # transpile + noise model once (cached in real use)
    t = time.perf_counter()
    backend.run(batch, SHOTS, np.random.default_rng(0))
    return time.perf_counter() - t


def full_device_time_per_circuit(profile: str, batch: CircuitBatch, n: int) -> float:
    from hqc_qiskit.quantum.devices import fake_backend

    tr, circuit = RuntimeBackend("fake_brisbane", profile=profile).measured_circuit(batch)
    params = tr.parameter_values(batch.x[:n], batch.w[:n], circuit)
    simulator = AerSimulator.from_backend(fake_backend("fake_brisbane"))
    bound = [circuit.assign_parameters(p) for p in params]
    t = time.perf_counter()
    simulator.run(bound, shots=SHOTS).result()
    return (time.perf_counter() - t) / n


def shot_ratios(model_dirs: list[str], n_structures: int = 3) -> list[dict]:
    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.data.dataset import read_structures
    from hqc_qiskit.hardware_studies import shots_for_stderr
    from hqc_qiskit.quantum.mitigation import extrapolation_weights

    frames = read_structures("data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz")[:n_structures]
    gamma = extrapolation_weights((1, 3, 5), "richardson")
    rows = []
    for d in model_dirs:
        model = load_model(d).double()
        r = shots_for_stderr(model, frames, 2.0)
        zne = shots_for_stderr(model, frames, 2.0, gamma)
        rows.append({"model": d, **r, "zne_richardson_1_3_5": zne})
        print(f"{d}: optimal/uniform shots for 2 meV/atom = {r['ratio_optimal_over_uniform']:.3f}; with ZNE "
              f"(Richardson 1,3,5; folds split too) {zne['ratio_optimal_over_uniform']:.3f}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-circuits", type=int, default=4)
    parser.add_argument("--eagle-circuits", type=int, default=8, help="circuits timed on the 12-qubit ibm_eagle profile")
    parser.add_argument("--models", nargs="*", default=sorted(glob.glob("runs/study_readouts/small_hqc_*_s0")))
    parser.add_argument("--shots-only", action="store_true",
                        help="only the optimal/uniform shot ratios (seconds), written to noisy_energy_shots.json")
    args = parser.parse_args()
    if args.shots_only:
        write_results("noisy_energy_shots", {"shots_for_2_mev_per_atom": shot_ratios(args.models),
                                             "target_optimal_over_uniform": 0.5})
        return
    batch = _batch()
    rows = []
    for profile in ("ibm_eagle_compact", "ibm_eagle"):
        if profile == "ibm_eagle":   # 12 active qubits: density matrices 256x larger; time a slice
            timed = CircuitBatch("cz", 8, 3, [(batch.groups[0][0][:args.eagle_circuits], batch.groups[0][1])])
            kind = f"extrapolated from {args.eagle_circuits} circuits"
        else:
            timed, kind = batch, "measured"
        times = {engine: reduced_time(profile, timed, engine) * len(batch) / len(timed) for engine in ("batched", "aer")}
        full = full_device_time_per_circuit(profile, batch, args.full_circuits) * len(batch)
        row = {"profile": profile, "circuits": len(batch), "shots_per_circuit": SHOTS,
               "reduced_seconds": times["batched"], "reduced_aer_seconds": times["aer"], "reduced_kind": kind,
               "batched_over_aer": times["batched"] / times["aer"],
               "full_device_seconds": full, "full_device_kind": f"extrapolated from {args.full_circuits} circuits",
               "reduced_over_full": times["batched"] / full, "target_seconds": 10.0}
        rows.append(row)
        print(f"{profile}: reduced {times['batched']:.1f} s batched engine, {times['aer']:.1f} s Aer ({kind}; ratio "
              f"{row['batched_over_aer']:.3f}); full device {full:.0f} s ({row['full_device_kind']}), "
              f"reduced/full {row['reduced_over_full']:.4f}")
    ratios = shot_ratios(args.models)
    write_results("noisy_energy", {"energy_320_circuits": rows, "shots_for_2_mev_per_atom": ratios,
                                   "target_optimal_over_uniform": 0.5})


if __name__ == "__main__":
    main()
