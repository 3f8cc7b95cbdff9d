"""What the stress costs: one ASE calculation (E + F, 64 atoms) with and without the stress, side by side.

    python benchmarks/stress_overhead.py [--runs runs/quick,runs/small_l2_hqc_cz_long,runs/l2_cmlp_long] [--threads 2]

Alternates the two calls on the same structure and calculator (float64, as MD runs it), best of --repeats each,
and prints with_stress / without for every model; JSON in benchmarks/results/stress_overhead.json. NPT pays this
ratio per MD step (the calculator computes both in one pass once the stress has been asked for).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/quick,runs/small_l2_hqc_cz_long,runs/l2_cmlp_long")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.data.dataset import read_structures

    atoms = read_structures(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.test.extxyz.gz", index="0")[0]
    rows = {}
    for run in args.runs.split(","):
        calc = HQCCalculator(ROOT / run, dtype="float64")
        plain = lambda: calc.calculate(atoms, ["energy", "forces"])            # noqa: E731
        calc_s = HQCCalculator(model=calc.model)
        stressed = lambda: calc_s.calculate(atoms, ["energy", "forces", "stress"])  # noqa: E731
        times = {"without": [], "with": []}
        for _ in range(3):   # alternate rounds, best of each
            times["without"].append(best_time(plain, args.repeats))
            times["with"].append(best_time(stressed, args.repeats))
        t0, t1 = min(times["without"]), min(times["with"])
        rows[run] = {"without_stress_s": t0, "with_stress_s": t1, "ratio": t1 / t0}
        print(f"{run}: E+F {t0 * 1000:.1f} ms, E+F+stress {t1 * 1000:.1f} ms, with / without = {t1 / t0:.3f}")
    write_results("stress_overhead", {"threads": args.threads, "repeats": args.repeats, "structure": "test frame 0, 64 atoms",
                                      "dtype": "float64", "models": rows})


if __name__ == "__main__":
    main()
