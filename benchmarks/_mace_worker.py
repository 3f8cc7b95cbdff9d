"""Times mace-torch on the shipped data; runs inside a separate venv (mace-torch pins e3nn 0.4.4).

Prints one JSON line: training-step seconds (forward + forces + backward, n structures) and
inference seconds (E + F of one structure). Called by benchmarks/vs_mace.py.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from ase.io import read
from e3nn import o3
from mace import data, modules, tools
from mace.tools import torch_geometric

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--n", type=int, default=20)
ap.add_argument("--hidden", default="128x0e + 128x1o")
ap.add_argument("--max-ell", type=int, default=3)
ap.add_argument("--cutoff", type=float, default=4.5)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeats", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
torch.set_default_dtype(torch.float32)

frames = read(args.data, index=f":{args.n}")
z_table = tools.AtomicNumberTable([14])
configs = [data.config_from_atoms(a) for a in frames]
atomic = [data.AtomicData.from_config(c, z_table=z_table, cutoff=args.cutoff) for c in configs]
batch = next(iter(torch_geometric.dataloader.DataLoader(atomic, batch_size=len(atomic), shuffle=False))).to_dict()
single = next(iter(torch_geometric.dataloader.DataLoader(atomic[:1], batch_size=1, shuffle=False))).to_dict()
energy = torch.tensor([a.get_potential_energy() for a in frames], dtype=torch.float32)
forces = torch.tensor(np.concatenate([a.get_forces() for a in frames]), dtype=torch.float32)

model = modules.ScaleShiftMACE(
    atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    r_max=args.cutoff, num_bessel=8, num_polynomial_cutoff=5, max_ell=args.max_ell,
    interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
    interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
    num_interactions=2, num_elements=1, hidden_irreps=o3.Irreps(args.hidden), MLP_irreps=o3.Irreps("16x0e"),
    atomic_energies=np.array([-106.2]), avg_num_neighbors=25.0, atomic_numbers=[14], correlation=3,
    gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64],
)
opt = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)


def step():
    out = model(batch, training=True, compute_force=True)
    loss = torch.mean((out["energy"] - energy) ** 2) + 100 * torch.mean((out["forces"] - forces) ** 2)
    opt.zero_grad()
    loss.backward()
    opt.step()


def infer():
    out = model(single, training=False, compute_force=True)
    out["forces"].detach()


train_step_s = best_time(step, args.repeats)
model.requires_grad_(False)   # inference with frozen parameters, as MACECalculator runs it
print(json.dumps({"train_step_s": train_step_s, "inference_s": best_time(infer, 5),
                  "n_parameters": sum(p.numel() for p in model.parameters()), "hidden_irreps": args.hidden,
                  "n_structures": args.n, "mace_version": __import__("mace").__version__}))
