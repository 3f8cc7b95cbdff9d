"""Batched density-matrix engine on states larger than the cache: blocks applied in tiles (default) vs one
block at a time, side by side, on the 11-qubit QFT readout (depolarizing noise, `ideal` profile), plain and
3x folded for ZNE. Also checks that both give the same distributions.

    python benchmarks/density_tiles.py [--circuits 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import write_results

import hqc_qiskit.quantum.density as density
from hqc_qiskit.quantum.backends import CircuitBatch, SimulatorBackend


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--circuits", type=int, default=4)
    parser.add_argument("--ansatz", default="qft_cx")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = CircuitBatch(args.ansatz, 8, 3, [(rng.uniform(-2, 2, (args.circuits, 8)), rng.uniform(0, 2 * np.pi, 24))])
    default_tiles = density._TILE_QUBITS
    rows = []
    for fold in (1, 3):
        sim = SimulatorBackend("depolarizing", "ideal").simulator(batch, fold)
        params = sim.tr.parameter_values(batch.x, batch.w, sim.tr.reduced)
        sim.distributions(params[:1])                        # compile once, outside the timing
        seconds, probs = {}, {}
        for label, tiles in (("tiled", default_tiles), ("untiled", 0)):
            density._TILE_QUBITS = tiles
            t = time.perf_counter()
            probs[label] = sim.distributions(params)
            seconds[label] = (time.perf_counter() - t) / args.circuits
        density._TILE_QUBITS = default_tiles
        row = {"ansatz": args.ansatz, "fold": fold, "qubits": sim.circuit.num_qubits, "circuits": args.circuits,
               "tiled_seconds_per_circuit": seconds["tiled"], "untiled_seconds_per_circuit": seconds["untiled"],
               "tiled_over_untiled": seconds["tiled"] / seconds["untiled"],
               "max_abs_difference": float(np.abs(probs["tiled"] - probs["untiled"]).max())}
        rows.append(row)
        print(f"{args.ansatz} fold {fold} ({row['qubits']} qubits): tiled {seconds['tiled']:.2f} s, untiled "
              f"{seconds['untiled']:.2f} s per circuit (ratio {row['tiled_over_untiled']:.3f}); max |difference| "
              f"{row['max_abs_difference']:.1e}")
    write_results("density_tiles", {"rows": rows, "tile_qubits": default_tiles, "tile_bytes": density._TILE_BYTES})


if __name__ == "__main__":
    main()
