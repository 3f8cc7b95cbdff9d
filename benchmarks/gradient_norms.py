"""Global gradient norms of a trained run over a few training batches (to choose train.grad_clip_norm).

    python benchmarks/gradient_norms.py RUN_YAML RUN_DIR [--batches 10] [-o key=value ...]

Loads RUN_DIR/checkpoint.pt through the trainer (RUN_YAML plus the overrides the run used), then for
the first --batches batches of the checkpoint epoch's order computes the loss of docs/training.md,
backward, and the global L2 norm of all parameter gradients (what clip_grad_norm_ compares with its
limit). No optimizer step: the checkpoint is not changed. Prints the norms and their range.
"""

from __future__ import annotations

import argparse

import torch

from hqc_qiskit.config import load_config
from hqc_qiskit.data.graph import collate, to_device
from hqc_qiskit.train import Trainer, loss_fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("run_dir")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("-o", "--override", action="append", default=[])
    args = parser.parse_args()
    cfg = load_config(args.config, [*args.override, f"output_dir={args.run_dir}"])
    trainer = Trainer(cfg, resume=True, progress=False)
    t = cfg.train
    order = trainer._epoch_order()
    norms = []
    for start in range(0, min(len(order), args.batches * t.batch_size), t.batch_size):
        batch = to_device(collate([trainer.graphs.train[i] for i in order[start : start + t.batch_size]]),
                          trainer.device, trainer.dtype)
        out = trainer.model(batch, compute_forces=True, create_graph=True)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss_fn(out, batch, t.energy_weight, t.forces_weight).backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), float("inf"))))
        print(f"batch {len(norms)}: gradient norm {norms[-1]:.2f}", flush=True)
    print(f"{len(norms)} batches: min {min(norms):.1f}, median {sorted(norms)[len(norms) // 2]:.1f}, max {max(norms):.1f}")


if __name__ == "__main__":
    main()
