"""Why some HQC seeds never learned forces with the paper's coupled L2 (docs/results.md, "Quantum readouts").

Trains one config and seed twice, identical except ``train.decoupled_weight_decay`` (false = the paper
code's Adam weight_decay, true = AdamW-style), and prints per epoch: the training force RMSE (eV/Å),
the norm of the backbone weights (interaction layers and embedding), and the spread over atoms of the
readout's embedding angles (std over the atoms of a fixed batch, mean over qubits and layers, rad).
Usage: python docs/evidence/weight_decay_plateau.py [config] [seed] [epochs]
       (default: small_hqc_basic 1 12; one thread per run, the two runs one after the other)
"""

import sys
from pathlib import Path

import torch

from hqc_qiskit.config import load_config
from hqc_qiskit.data.graph import collate, to_device
from hqc_qiskit.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
name, seed, epochs = (sys.argv[1:] + ["small_hqc_basic", "1", "12"][len(sys.argv[1:]):])[:3]


def angle_spread(model, batch) -> float:
    """Mean over readouts and qubits of the std over atoms of the embedding angles (rad)."""
    captured = []
    hooks = [r.encode.register_forward_hook(lambda m, i, o, r=r: captured.append(getattr(r, "angle_scale", 1.0) * o))
             for r in model.readouts if hasattr(r, "encode")]
    with torch.no_grad():
        model(batch, compute_forces=False)
    for h in hooks:
        h.remove()
    return float(torch.stack([a.std(dim=0).mean() for a in captured]).mean()) if captured else float("nan")


for decoupled in (False, True):
    cfg = load_config(ROOT / "runs" / f"{name}.yaml", [
        f"seed={seed}", f"train.max_epochs={epochs}", f"train.decoupled_weight_decay={str(decoupled).lower()}",
        "output_dir=/tmp/weight_decay_plateau"])
    trainer = Trainer(cfg, progress=False, overwrite=True)   # a scratch directory
    batch = to_device(collate(trainer.graphs.train[:20]), "cpu", torch.float32)
    backbone = [p for n, p in trainer.model.named_parameters() if n.startswith(("layers.", "embedding."))]
    print(f"{name} seed {seed}, decoupled_weight_decay={decoupled}")
    print("epoch  train F RMSE  backbone |w|  angle spread")
    print(f"{0:5d}  {'':12s}  {torch.cat([p.detach().reshape(-1) for p in backbone]).norm():12.3f}  "
          f"{angle_spread(trainer.model, batch):12.4f}")
    for epoch in range(1, int(epochs) + 1):
        row = trainer.train_epoch()
        trainer.epoch += 1
        norm = torch.cat([p.detach().reshape(-1) for p in backbone]).norm()
        print(f"{epoch:5d}  {row['train_rmse_f_ev_a']:12.4f}  {norm:12.3f}  {angle_spread(trainer.model, batch):12.4f}", flush=True)
