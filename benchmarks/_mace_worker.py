"""Times mace-torch on the shipped data; runs inside a separate venv (mace-torch pins e3nn 0.4.4).

Prints one JSON line: training-step seconds (forward + forces + backward, n structures), inference seconds
(E + F of one structure) and the peak resident memory. ``--micro M``: the step's n structures in passes of M
with the gradients added up (as hqc-qiskit's train.micro_batch_size). Called by benchmarks/vs_mace.py and
benchmarks/micro_batch.py.
"""

import argparse
import json
import resource
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
ap.add_argument("--micro", type=int, default=0, help="structures per pass (0: all n in one pass)")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
torch.set_default_dtype(torch.float32)

frames = read(args.data, index=f":{args.n}")
z_table = tools.AtomicNumberTable([14])
configs = [data.config_from_atoms(a) for a in frames]
atomic = [data.AtomicData.from_config(c, z_table=z_table, cutoff=args.cutoff) for c in configs]
micro = args.micro or len(atomic)
passes = [b.to_dict() for b in torch_geometric.dataloader.DataLoader(atomic, batch_size=micro, shuffle=False)]
single = next(iter(torch_geometric.dataloader.DataLoader(atomic[:1], batch_size=1, shuffle=False))).to_dict()
groups = [frames[i : i + micro] for i in range(0, len(frames), micro)]   # the structures of each pass
energy = [torch.tensor([a.get_potential_energy() for a in g], dtype=torch.float32) for g in groups]
forces = [torch.tensor(np.concatenate([a.get_forces() for a in g]), dtype=torch.float32) for g in groups]
n_forces = sum(f.numel() for f in forces)

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
    opt.zero_grad()
    for batch, e, f in zip(passes, energy, forces, strict=True):   # means over the whole n, as one pass of n
        out = model(batch, training=True, compute_force=True)
        loss = ((out["energy"] - e) ** 2).sum() / len(frames) + 100 * ((out["forces"] - f) ** 2).sum() / n_forces
        loss.backward()
    opt.step()


def infer():
    out = model(single, training=False, compute_force=True)
    out["forces"].detach()


train_step_s = best_time(step, args.repeats)
model.requires_grad_(False)   # inference with frozen parameters, as MACECalculator runs it
print(json.dumps({"train_step_s": train_step_s, "inference_s": best_time(infer, 5),
                  "n_parameters": sum(p.numel() for p in model.parameters()), "hidden_irreps": args.hidden,
                  "n_structures": args.n, "micro_batch": micro, "mace_version": __import__("mace").__version__,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
