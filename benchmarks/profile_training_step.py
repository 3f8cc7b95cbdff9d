"""torch.profiler table of one training step (forward + forces + loss + backward + optimizer step),
or with --inference of one E + F evaluation of the first structure (frozen parameters, as HQCCalculator).

    python benchmarks/profile_training_step.py --config cmlp --n 2 [--threads 1] [--rows 25] [--tensor-product e3nn]
    python benchmarks/profile_training_step.py --config cmlp --inference --threads 2

Writes benchmarks/results/profile_<config>_<tensor product>[_inference].txt (operators by self CPU time)
and prints it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402

from hqc_qiskit.config import load_config  # noqa: E402
from hqc_qiskit.data.dataset import load_labelled  # noqa: E402
from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device  # noqa: E402
from hqc_qiskit.model.potential import build_model  # noqa: E402
from hqc_qiskit.train import loss_fn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="cmlp")
    ap.add_argument("--n", type=int, default=2, help="structures per batch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--tensor-product", default="grouped", help="grouped (default), split or e3nn (before issue 7)")
    ap.add_argument("--inference", action="store_true", help="profile E + F of one structure instead of a training step")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(ROOT / "runs" / f"{a.config}.yaml").model.model_copy(update={"tensor_product": a.tensor_product})
    frames = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz")[: a.n]
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    batch = to_device(collate([atoms_to_graph(x, cfg.cutoff, cfg.species, with_labels=True) for x in frames]), "cpu", torch.float32)

    if a.inference:
        model.eval().requires_grad_(False)
        single = to_device(collate([atoms_to_graph(frames[0], cfg.cutoff, cfg.species)]), "cpu", torch.float32)

    def infer():
        with record_function("energy+forces"):
            model(single, compute_forces=True)["forces"].detach()

    def train_step():
        with record_function("forward+forces"):
            out = model(batch, compute_forces=True, create_graph=True)
            loss = loss_fn(out, batch, 1.0, 100.0)
        with record_function("backward"):
            opt.zero_grad()
            loss.backward()
        with record_function("optimizer"):
            opt.step()

    step = infer if a.inference else train_step
    step()   # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows)
    totals = prof.key_averages().table(sort_by="cpu_time_total", row_limit=8)
    what = "inference (E + F of 1 structure)" if a.inference else f"training step, {a.n} structures"
    text = f"config {a.config}, tensor product {a.tensor_product}, {what}, {a.threads} thread(s)\n\n{totals}\n\n{table}\n"
    path = RESULTS / f"profile_{a.config}_{a.tensor_product}{'_inference' if a.inference else ''}.txt"
    path.write_text(text)
    print(text)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
