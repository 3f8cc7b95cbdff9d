"""Training step of HQC (each ansatz, exact engine) over the CMLP step on the same batch (issue 4 target <= 1.10).

Same backbone, batch and loss; only the readout differs. Steps are timed in interleaved rounds, each
round in a fresh seeded random order of the six models, so machine drift hits all models alike.
Two ratios are reported: best HQC step / best CMLP step, and the median over rounds of the ratio
within a round (HQC step / CMLP step of the same round), which is less sensitive to one slow step.

    python benchmarks/hqc_training_step.py --backbone small_cmlp --n 20     # fast study config, 20 x 64 atoms
    python benchmarks/hqc_training_step.py --backbone cmlp --n 2            # paper architecture (slow: ~5 s/structure)

Output: benchmarks/results/hqc_training_step_<backbone>[_n<N> unless N = 20].json
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from hqc_qiskit.config import QuantumReadoutConfig, load_config  # noqa: E402
from hqc_qiskit.data.dataset import load_labelled  # noqa: E402
from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device  # noqa: E402
from hqc_qiskit.model.potential import build_model  # noqa: E402
from hqc_qiskit.quantum.circuits import ansatz_names  # noqa: E402
from hqc_qiskit.train import loss_fn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="small_cmlp", help="config in runs/ whose backbone is used")
    ap.add_argument("--n", type=int, default=20, help="structures per batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_config(ROOT / "runs" / f"{args.backbone}.yaml").model
    frames = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz")[: args.n]
    batch = to_device(collate([atoms_to_graph(a, base.cutoff, base.species, with_labels=True) for a in frames]), "cpu", torch.float32)
    variants = {"cmlp": base}
    for name in ansatz_names():
        variants[f"hqc_{name}"] = base.model_copy(update={"readout": QuantumReadoutConfig(ansatz=name)})
    steps = {}
    for label, cfg in variants.items():
        torch.manual_seed(0)
        model = build_model(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)

        def step(model=model, opt=opt):
            out = model(batch, compute_forces=True, create_graph=True)
            loss = loss_fn(out, batch, 1.0, 100.0)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # warm-up
        steps[label] = step
    times = {label: [] for label in steps}
    order_rng = random.Random(0)
    for r in range(args.rounds):
        order = list(steps)
        order_rng.shuffle(order)
        for label in order:
            t = time.perf_counter()
            steps[label]()
            times[label].append(time.perf_counter() - t)
        print(f"round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f}s" for k in order), flush=True)
    best = {k: min(v) for k, v in times.items()}
    ratios = {k: best[k] / best["cmlp"] for k in best if k != "cmlp"}
    paired = {k: statistics.median(a / c for a, c in zip(times[k], times["cmlp"])) for k in ratios}
    for k in ratios:
        print(f"{k:12s} step / CMLP step: best {ratios[k]:.3f}, median of rounds {paired[k]:.3f}   (target <= 1.10)")
    write_results(f"hqc_training_step_{args.backbone}" + ("" if args.n == 20 else f"_n{args.n}"), {
        "backbone": args.backbone, "n_structures": args.n, "atoms": int(batch["n_atoms"].sum()), "rounds": args.rounds,
        "seconds_min": best, "seconds_all": times, "ratio_over_cmlp": ratios,
        "ratio_over_cmlp_median_of_rounds": paired, "target": "<= 1.10"})


if __name__ == "__main__":
    main()
