"""Time and memory of the Heisenberg noisy-readout coefficients as the transpiled circuit grows, side by side.

The backward construction (quantum/heisenberg.py) evolves the m measured observables through the whole reduced
circuit: its vectors have m x 4^q entries for a circuit that touches q qubits. The compact Eagle profile keeps
the 8-qubit cz readout on 8 qubits; the whole-chip profile routes it onto 12 (4^4 = 256x the entries). With the
circuit weights trained (`--train-circuits`), autograd keeps the intermediate vectors for the backward pass, so
memory, not time, is what may run out. Each setting runs in its own process so that its peak resident memory
is its own.

Usage: python benchmarks/heisenberg_scale.py [--profiles ibm_eagle_compact ibm_eagle] [--threads 1]
Output: benchmarks/results/heisenberg_scale.json (per profile: qubits, compile, coefficients with and without the
weight gradient, peak memory; ratios of the last profile to the first)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, write_results  # noqa: E402

MODES = ("coefficients", "with_weight_gradient")


def worker(profile: str, mode: str, threads: int) -> dict:
    """One setting in this process: build the readout's Heisenberg engine on fake_brisbane with ``profile``, time
    ``mode`` (best of 2 after a warm-up) and report the process's peak resident memory (GiB)."""
    import numpy as np
    import torch

    from hqc_qiskit.quantum.backends import make_backend
    from hqc_qiskit.quantum.heisenberg import HeisenbergReadout
    from hqc_qiskit.quantum.noisy_readout import readout_simulator

    torch.set_num_threads(threads)
    n, layers = 8, 3
    sim = readout_simulator(make_backend(f"aer-noise:fake_brisbane@{profile}"), "cz", n, layers)
    start = time.perf_counter()
    engine = HeisenbergReadout(sim)
    compile_s = time.perf_counter() - start
    rss_compiled = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    weights = torch.tensor(np.random.default_rng(0).uniform(0, 2 * np.pi, size=(layers, n)), requires_grad=True)
    if mode == "coefficients":
        def call():
            with torch.no_grad():
                engine.coefficients(weights)
    else:
        def call():
            engine.coefficients(weights).pow(2).sum().backward()
    seconds = best_time(call, repeats=2)
    return {"profile": profile, "mode": mode, "qubits": engine.n_qubits, "compile_seconds": compile_s,
            "seconds": seconds, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "peak_rss_after_compile_gib": rss_compiled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["ibm_eagle_compact", "ibm_eagle"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", nargs=2, metavar=("PROFILE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.threads)))
        return
    rows = []
    for profile in args.profiles:
        for mode in MODES:
            done = subprocess.run([sys.executable, __file__, "--worker", profile, mode, "--threads", str(args.threads)],
                                  capture_output=True, text=True)
            if done.returncode != 0:   # e.g. killed for memory: recorded, not hidden
                rows.append({"profile": profile, "mode": mode, "failed": done.returncode,
                             "stderr_tail": done.stderr[-2000:]})
                print(f"{profile:>20} {mode:>22}: failed (exit {done.returncode})")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{profile:>20} {mode:>22}: {row['qubits']} qubits, {row['seconds']:8.2f} s, "
                  f"peak {row['peak_rss_gib']:.2f} GiB (compile {row['compile_seconds']:.1f} s)")
    ok = {(r["profile"], r["mode"]): r for r in rows if "failed" not in r}
    first, last = args.profiles[0], args.profiles[-1]
    ratios = {}
    for mode in MODES:
        if (first, mode) in ok and (last, mode) in ok:
            a, b = ok[(first, mode)], ok[(last, mode)]
            ratios[f"{mode}_seconds_{last}_over_{first}"] = b["seconds"] / a["seconds"]
            ratios[f"{mode}_peak_rss_{last}_over_{first}"] = b["peak_rss_gib"] / a["peak_rss_gib"]
    for key, value in ratios.items():
        print(f"{key}: {value:.1f}")
    write_results("heisenberg_scale", {"settings": vars(args), "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
