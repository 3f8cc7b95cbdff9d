"""The interaction layer's implementations side by side: e3nn's modules, 'split' and 'grouped' (issues 3, 7).

'grouped_full_last' is 'grouped' with the last layer computing all its channels (before session 8);
'grouped' (the default) computes only the last layer's 0e edge paths, the only ones the readouts read.

    python benchmarks/tensor_product.py [--configs cmlp,hqc_cz] [--n 4] [--threads 2] [--repeats 2]

Same model weights, same batch; the implementations alternate so machine drift hits all of them.
Measures a training step (forward, forces with create_graph, loss, backward) on --n structures and
inference (E + F of one 64-atom structure, best of 5), and checks that all give the same loss and
forces. Output: benchmarks/results/tensor_product.json with each implementation's time over e3nn's.
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
IMPLEMENTATIONS = ("e3nn", "split", "grouped_full_last", "grouped")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="cmlp,hqc_cz")
    ap.add_argument("--n", type=int, default=4, help="structures per training batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    frames = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz")[: a.n]
    results = {}
    for name in a.configs.split(","):
        base = load_config(ROOT / "runs" / f"{name}.yaml").model
        batch = to_device(collate([atoms_to_graph(x, base.cutoff, base.species, with_labels=True) for x in frames]), "cpu", torch.float32)
        single = to_device(collate([atoms_to_graph(frames[0], base.cutoff, base.species)]), "cpu", torch.float32)
        steps, infers, losses, forces = {}, {}, {}, {}
        for impl in IMPLEMENTATIONS:
            torch.manual_seed(0)
            model = build_model(base.model_copy(update={"tensor_product": impl.removesuffix("_full_last")}))
            if impl.endswith("_full_last"):
                model.layers[-1].scalar_output_only = False

            def step(model=model):
                out = model(batch, compute_forces=True, create_graph=True)
                loss = loss_fn(out, batch, 1.0, 100.0)
                model.zero_grad()
                loss.backward()
                return float(loss.detach())

            def infer(model=model):
                return model(single, compute_forces=True)["forces"].detach()

            losses[impl] = step()          # warm-up, and the loss for the equality check
            forces[impl] = infer()
            steps[impl], infers[impl] = step, infer
        step_times = {impl: [] for impl in IMPLEMENTATIONS}
        infer_times = {impl: [] for impl in IMPLEMENTATIONS}
        for _ in range(a.repeats):
            for impl in IMPLEMENTATIONS:
                t = time.perf_counter()
                steps[impl]()
                step_times[impl].append(time.perf_counter() - t)
        for _ in range(5):
            for impl in IMPLEMENTATIONS:
                t = time.perf_counter()
                infers[impl]()
                infer_times[impl].append(time.perf_counter() - t)
        step_s = {k: min(v) for k, v in step_times.items()}
        infer_s = {k: min(v) for k, v in infer_times.items()}
        results[name] = {
            "step_s": step_s, "inference_s": infer_s,
            "step_over_e3nn": {k: v / step_s["e3nn"] for k, v in step_s.items()},
            "inference_over_e3nn": {k: v / infer_s["e3nn"] for k, v in infer_s.items()},
            "loss": losses,
            "loss_rel_diff": {k: abs(v - losses["e3nn"]) / abs(losses["e3nn"]) for k, v in losses.items()},
            "forces_max_abs_diff_ev_a": {k: float((v - forces["e3nn"]).abs().max()) for k, v in forces.items()},
        }
        for impl in IMPLEMENTATIONS:
            print(f"{name} {impl:8s}: step {step_s[impl]:.2f} s ({step_s[impl] / step_s['e3nn']:.3f} of e3nn), "
                  f"inference {infer_s[impl]:.3f} s ({infer_s[impl] / infer_s['e3nn']:.3f}); loss rel. diff "
                  f"{results[name]['loss_rel_diff'][impl]:.1e}, max |dF| {results[name]['forces_max_abs_diff_ev_a'][impl]:.1e} eV/Å",
                  flush=True)
    write_results("tensor_product", {"n_structures": a.n, "threads": a.threads, "repeats": a.repeats, "configs": results})


if __name__ == "__main__":
    main()
