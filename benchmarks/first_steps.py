"""Per-step training-batch energy offset (meV/atom) and force RMSE of a run config for the first steps:
is the early energy error the untrained model's offset or Adam's first steps? (issue 7, session 10)

    python benchmarks/first_steps.py CONFIG_NAME fit|residual WARMUP_STEPS N_STEPS
    python benchmarks/first_steps.py cmlp residual 0 8     # session 10: step 0 -1.3, step 1 +2697 meV/atom
    python benchmarks/first_steps.py cmlp residual 20 10   # with a 20-step warm-up: within +-180 meV/atom

Prints one line per step (before that step's update); output not saved. Run from the repository root.
"""
import argparse
import time

import torch

from hqc_qiskit.config import load_config
from hqc_qiskit.data import keys as K
from hqc_qiskit.data.dataset import load_labelled
from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device
from hqc_qiskit.model.potential import build_model
from hqc_qiskit.train import fit_reference_energies, fit_residual_reference_energies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config_name", help="a config under runs/, without .yaml (e.g. cmlp)")
    parser.add_argument("mode", choices=["fit", "residual"], help="reference energies: per-species fit, or fit to "
                        "the residual of the untrained model")
    parser.add_argument("warmup_steps", type=int, help="linear learning-rate warm-up steps (0: none)")
    parser.add_argument("n_steps", type=int, help="training steps to log (20 structures each, at most 10)")
    a = parser.parse_args()
    if not 1 <= a.n_steps <= 10:
        parser.error("n_steps must be 1-10 (the first 200 training structures, 20 per step)")
    torch.set_num_threads(2)
    cfg = load_config(f"runs/{a.config_name}.yaml").model
    train = load_labelled("data/si_liquid_3000K/si_liquid_3000K.train.extxyz.gz")
    torch.manual_seed(0)
    model = build_model(cfg).float()
    model.reference_energies.copy_(fit_reference_energies(train, cfg.species))
    graphs = [atoms_to_graph(x, cfg.cutoff, cfg.species, with_labels=True) for x in train[:200]]
    if a.mode == "residual":
        t = time.perf_counter()
        model.reference_energies.copy_(fit_residual_reference_energies(model, graphs, cfg.species, "cpu", torch.float32))
        print("fit", time.perf_counter() - t)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    warm = a.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm)) if warm else None
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(200, generator=gen).tolist()
    for step in range(a.n_steps):
        t = time.perf_counter()
        b = to_device(collate([graphs[i] for i in order[20 * step:20 * step + 20]]), "cpu", torch.float32)
        out = model(b, compute_forces=True, create_graph=True)
        de = (out["energy"] - b[K.ENERGY]) / b[K.N_ATOMS]
        fe = ((out["forces"] - b[K.FORCES]) ** 2).mean()
        loss = torch.mean((out["energy"] - b[K.ENERGY]) ** 2) + 100 * fe
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        de, fe, loss = de.detach(), fe.detach(), loss.detach()
        print(f"step {step} meanE {float(de.mean()) * 1000:9.1f} meV/atom  stdE {float(de.std()) * 1000:7.1f}  "
              f"F {float(fe.sqrt()):.4f}  loss {float(loss):10.1f}  {time.perf_counter() - t:.1f}s", flush=True)


if __name__ == "__main__":
    main()
