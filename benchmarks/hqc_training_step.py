"""Training step of HQC (each ansatz, exact engine) over the CMLP step on the same batch (issue 4 target <= 1.10).

Same backbone, batch and loss; only the readout differs. Steps are timed in interleaved rounds, each
round in a fresh seeded random order of the six models, so machine drift hits all models alike.
Two ratios are reported: best HQC step / best CMLP step, and the median over rounds of the ratio
within a round (HQC step / CMLP step of the same round), which is less sensitive to one slow step.

Whole steps of the paper backbone take 13-25 s and drift by +-20% over minutes on the project's
machines, more than the readouts' share of a step. So the run also times what differs between the
models, the readouts alone: each model's per-layer readouts on (atoms, scalars) inputs, with the
force-training pattern (energy, its input gradient with create_graph, a loss of both, backward),
interleaved over many repeats. ``ratio_from_readout_cost`` = 1 + (HQC readouts - CMLP readouts) /
best CMLP step is a low-noise estimate of the same ratio, and a low one: on the quick backbone, where
whole-step ratios are clear, it captured 65-78% of the measured extra cost (docs/results.md).

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
    ap.add_argument("--readout-repeats", type=int, default=10, help="interleaved repeats of the readouts-only timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_config(ROOT / "runs" / f"{args.backbone}.yaml").model
    frames = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz")[: args.n]
    batch = to_device(collate([atoms_to_graph(a, base.cutoff, base.species, with_labels=True) for a in frames]), "cpu", torch.float32)
    variants = {"cmlp": base}
    for name in ansatz_names():
        variants[f"hqc_{name}"] = base.model_copy(update={"readout": QuantumReadoutConfig(ansatz=name)})
    steps, models = {}, {}
    for label, cfg in variants.items():
        torch.manual_seed(0)
        model = models[label] = build_model(cfg)
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
    readouts = readout_seconds(models, int(batch["n_atoms"].sum()), repeats=args.readout_repeats)
    from_readouts = {k: 1 + (readouts[k] - readouts["cmlp"]) / best["cmlp"] for k in ratios}
    print("readouts alone (s per step): " + ", ".join(f"{k} {v:.3f}" for k, v in readouts.items()))
    for k in ratios:
        print(f"{k:12s} step / CMLP step: best {ratios[k]:.3f}, median of rounds {paired[k]:.3f}, "
              f"from readout cost {from_readouts[k]:.3f}   (target <= 1.10)")
    write_results(f"hqc_training_step_{args.backbone}" + ("" if args.n == 20 else f"_n{args.n}"), {
        "backbone": args.backbone, "n_structures": args.n, "atoms": int(batch["n_atoms"].sum()), "rounds": args.rounds,
        "seconds_min": best, "seconds_all": times, "ratio_over_cmlp": ratios,
        "ratio_over_cmlp_median_of_rounds": paired, "readouts_seconds_min": readouts,
        "ratio_from_readout_cost": from_readouts, "target": "<= 1.10"})


def readout_seconds(models: dict, n_atoms: int, repeats: int) -> dict:
    """Best time (s) of each model's readouts alone, force-training pattern, interleaved over ``repeats``."""
    gen = torch.Generator().manual_seed(0)
    inputs = {k: [torch.randn(n_atoms, len(m.hidden_scalar_idx), generator=gen) for _ in m.readouts]
              for k, m in models.items()}   # each readout reads the layer's scalars (HQCPotential.forward)

    def run(label):
        loss = 0.0
        for readout, x in zip(models[label].readouts, inputs[label]):
            x = x.clone().requires_grad_(True)
            energy = readout(x).sum()
            (grad,) = torch.autograd.grad(energy, x, create_graph=True)
            loss = loss + energy**2 + grad.pow(2).sum()
        loss.backward()

    times = {k: [] for k in models}
    for _ in range(repeats + 1):          # the first pass is a warm-up
        for label in models:
            t = time.perf_counter()
            run(label)
            times[label].append(time.perf_counter() - t)
    return {k: min(v[1:]) for k, v in times.items()}


if __name__ == "__main__":
    main()
