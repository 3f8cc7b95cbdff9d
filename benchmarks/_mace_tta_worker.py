"""MACE side of benchmarks/time_to_accuracy.py; runs in the MACE venv (mace-torch pins e3nn 0.4.4).

Trains mace-torch's default size (128x0e + 128x1o, L=1 messages, 2 interactions, correlation 3) with
the shared loop of _tta_loop.py and prints one JSON line with the evaluation history.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read
from e3nn import o3
from mace import data, modules, tools
from mace.tools import torch_geometric

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tta_loop import train_timed  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--train", required=True)
ap.add_argument("--val", required=True)
ap.add_argument("--e0", type=float, required=True, help="eV/atom, the same least-squares reference as ours")
ap.add_argument("--hidden", default="128x0e + 128x1o")
ap.add_argument("--cutoff", type=float, default=4.5)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--budget", type=float, default=1800.0)
ap.add_argument("--eval-every", type=float, default=60.0)
ap.add_argument("--threshold", type=float, default=None)
ap.add_argument("--batch-size", type=int, default=20)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--warmup-steps", type=int, default=0)
ap.add_argument("--ema-warmup", action="store_true")
ap.add_argument("--initial-shift", choices=["none", "residual"], default="none",
                help="'residual': atomic_inter_shift = mean per-atom (label - untrained model) energy on the first "
                "--residual-structures training structures (the same fit as ours' reference_energies: fit_residual); "
                "its cost counts as training time")
ap.add_argument("--residual-structures", type=int, default=40, help="hqc_qiskit.train.RESIDUAL_FIT_STRUCTURES")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
torch.set_default_dtype(torch.float32)
z_table = tools.AtomicNumberTable([14])


def atomic_data(path):
    frames = read(path, index=":")
    items = [data.AtomicData.from_config(data.config_from_atoms(a), z_table=z_table, cutoff=args.cutoff) for a in frames]
    energy = torch.tensor([a.get_potential_energy() for a in frames], dtype=torch.float32)
    forces = [torch.tensor(a.get_forces(), dtype=torch.float32) for a in frames]
    n_atoms = torch.tensor([len(a) for a in frames], dtype=torch.float32)
    return items, energy, forces, n_atoms


train, train_e, train_f, _ = atomic_data(args.train)
val, val_e, val_f, val_n = atomic_data(args.val)
model = modules.ScaleShiftMACE(
    atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    r_max=args.cutoff, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
    interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
    interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
    num_interactions=2, num_elements=1, hidden_irreps=o3.Irreps(args.hidden), MLP_irreps=o3.Irreps("16x0e"),
    atomic_energies=np.array([args.e0]), avg_num_neighbors=25.0, atomic_numbers=[14], correlation=3,
    gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64],
)


def batch_of(items, idx):
    return next(iter(torch_geometric.dataloader.DataLoader([items[i] for i in idx], batch_size=len(idx), shuffle=False))).to_dict()


def residual_shift(m, n_structures, batch_size=10):
    """Mean per-atom (label - model) energy, eV/atom; one element, so least squares is this mean."""
    total, atoms = 0.0, 0
    for start in range(0, n_structures, batch_size):
        idx = list(range(start, min(start + batch_size, n_structures, len(train))))
        out = m(batch_of(train, idx), training=False, compute_force=False)
        total += float((train_e[idx] - out["energy"].detach()).sum())
        atoms += sum(len(train_f[i]) for i in idx)
    return total / atoms


setup_s = 0.0
if args.initial_shift == "residual":
    t0 = time.perf_counter()
    shift = residual_shift(model, args.residual_structures)
    model.scale_shift.shift.fill_(shift)
    setup_s = time.perf_counter() - t0
    print(f"MACE residual shift {shift:.4f} eV/atom ({setup_s:.1f} s)", file=sys.stderr, flush=True)


def loss_of(m, idx):
    out = m(batch_of(train, idx), training=True, compute_force=True)
    f_ref = torch.cat([train_f[i] for i in idx])
    return torch.mean((out["energy"] - train_e[idx]) ** 2) + 100.0 * torch.mean((out["forces"] - f_ref) ** 2)


def evaluate(m):
    e_err, f_err = [], []
    for start in range(0, len(val), 10):
        idx = list(range(start, min(start + 10, len(val))))
        out = m(batch_of(val, idx), training=False, compute_force=True)
        e_err.append((out["energy"].detach() - val_e[idx]) / val_n[idx])
        f_err.append(out["forces"].detach() - torch.cat([val_f[i] for i in idx]))
    e, f = torch.cat(e_err), torch.cat(f_err)
    return float(torch.sqrt(torch.mean(e**2)) * 1000), float(torch.sqrt(torch.mean(f**2)))


history = train_timed(model, loss_of, evaluate, len(train), args.batch_size, budget_s=args.budget,
                      eval_every_s=args.eval_every, threshold=args.threshold, seed=args.seed, setup_s=setup_s,
                      warmup_steps=args.warmup_steps, ema_warmup=args.ema_warmup,
                      log=lambda s: print(s, file=sys.stderr, flush=True))
print(json.dumps({"history": history, "n_parameters": sum(p.numel() for p in model.parameters()),
                  "hidden_irreps": args.hidden, "mace_version": __import__("mace").__version__}))
