"""Training step of the paper's architecture with e3nn's edge tensor product vs the split one (issue 7).

    python benchmarks/tensor_product.py [--configs cmlp,hqc_cz] [--n 4] [--threads 2] [--repeats 2]

Same model weights, same batch; the two implementations alternate so machine drift hits both.
Also checks that both give the same loss. Output: benchmarks/results/tensor_product.json with the
ratio split / e3nn per config.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from hqc_qiskit.config import load_config  # noqa: E402
from hqc_qiskit.data.dataset import load_labelled  # noqa: E402
from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device  # noqa: E402
from hqc_qiskit.model.potential import build_model  # noqa: E402
from hqc_qiskit.train import loss_fn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="cmlp,hqc_cz")
    ap.add_argument("--n", type=int, default=4, help="structures per batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    frames = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz")[: a.n]
    results = {}
    for name in a.configs.split(","):
        base = load_config(ROOT / "runs" / f"{name}.yaml").model
        batch = to_device(collate([atoms_to_graph(x, base.cutoff, base.species, with_labels=True) for x in frames]), "cpu", torch.float32)
        steps, losses = {}, {}
        for impl in ("e3nn", "split"):
            torch.manual_seed(0)
            model = build_model(base.model_copy(update={"tensor_product": impl}))

            def step(model=model):
                out = model(batch, compute_forces=True, create_graph=True)
                loss = loss_fn(out, batch, 1.0, 100.0)
                model.zero_grad()
                loss.backward()
                return float(loss.detach())

            losses[impl] = step()          # warm-up, and the loss for the equality check
            steps[impl] = step
        times = {"e3nn": [], "split": []}
        for _ in range(a.repeats):
            for impl in ("e3nn", "split"):
                t = time.perf_counter()
                steps[impl]()
                times[impl].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        results[name] = {"step_s": best, "ratio_split_over_e3nn": best["split"] / best["e3nn"],
                         "loss": losses, "loss_rel_diff": abs(losses["split"] - losses["e3nn"]) / abs(losses["e3nn"])}
        print(f"{name}: e3nn {best['e3nn']:.2f} s, split {best['split']:.2f} s per step of {a.n} structures "
              f"(ratio {best['split'] / best['e3nn']:.3f}); loss rel. diff {results[name]['loss_rel_diff']:.1e}", flush=True)
    write_results("tensor_product", {"n_structures": a.n, "threads": a.threads, "repeats": a.repeats, "configs": results})


if __name__ == "__main__":
    main()
