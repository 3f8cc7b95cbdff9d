"""Lower precision for the paper's architecture: speed and accuracy cost against float32 (issue 7).

    python benchmarks/mixed_precision.py [--run runs/paper_cmlp] [--n 4] [--threads 2] [--repeats 3]
        [--device cpu|cuda]

Loads a trained model (default: the paper-architecture CMLP of runs/paper_cmlp) and runs the same
batch of validation structures (E and F of --n structures of 64 atoms) in each precision:

* float64: the reference for the errors;
* float32: the default;
* bfloat16: the whole model and batch in bfloat16 (every op, also the sums over edges and the
  reference-energy offset), the fastest possible low-precision variant and an upper bound on the
  error of a mixed-precision scheme;
* autocast-bf16: float32 model and batch under ``torch.autocast`` with bfloat16 (matmuls in bfloat16,
  edge sums and the quantum circuit in float32), the usual mixed-precision recipe;
* on CUDA also float32 with TF32 matmuls (``torch.backends.cuda.matmul.allow_tf32``).

Reported per precision: inference time (E + F) and training-step time (loss E + 100 F, backward),
best of --repeats, as ratios to float32 measured in this run; the energy error (meV/atom, max over
structures) and the force RMSE error (eV/Å) against float64, next to the model's own test errors
against DFT. Output: benchmarks/results/mixed_precision[_cuda].json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, repo_path, write_results  # noqa: E402

from hqc_qiskit.checkpoint import load_model  # noqa: E402
from hqc_qiskit.data import keys as K  # noqa: E402
from hqc_qiskit.data.dataset import load_labelled  # noqa: E402
from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device  # noqa: E402
from hqc_qiskit.model.potential import build_model  # noqa: E402
from hqc_qiskit.train import loss_fn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.val.extxyz.gz"


def model_in(trained, dtype: torch.dtype, device: str):
    """A trainable copy of ``trained`` in ``dtype`` on ``device``."""
    model = build_model(trained.config.model_dump(mode="json")).to(device=device, dtype=dtype)
    model.load_state_dict(trained.state_dict())
    return model.train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "runs" / "paper_cmlp"))
    ap.add_argument("--n", type=int, default=4, help="validation structures in the batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    trained = load_model(a.run)
    cfg = trained.config
    graphs = [atoms_to_graph(x, cfg.cutoff, cfg.species, with_labels=True) for x in load_labelled(VAL)[: a.n]]
    variants = {"float64": (torch.float64, False, False), "float32": (torch.float32, False, False),
                "bfloat16": (torch.bfloat16, False, False), "autocast-bf16": (torch.float32, False, True)}
    if a.device == "cuda":
        variants["float32+tf32"] = (torch.float32, True, False)

    outputs, timing = {}, {}
    for name, (dtype, tf32, autocast) in variants.items():
        if a.device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
        model = model_in(trained, dtype, a.device)
        batch = to_device(collate(graphs), a.device, dtype)
        sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)

        def infer(autocast=autocast):
            with torch.autocast(a.device, dtype=torch.bfloat16, enabled=autocast):
                out = model(batch, compute_forces=True)
            sync()
            return out

        def step(autocast=autocast):
            model.zero_grad()
            with torch.autocast(a.device, dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(model(batch, compute_forces=True, create_graph=True), batch, 1.0, 100.0)
            loss.backward()
            sync()

        out = infer()
        outputs[name] = {k: out[k].detach().double().cpu() for k in ("energy", "forces")}
        timing[name] = {"inference_s": best_time(infer, a.repeats), "train_step_s": best_time(step, a.repeats)}
        print(f"{name:14s} inference {timing[name]['inference_s']:.3f} s  step {timing[name]['train_step_s']:.3f} s", flush=True)

    n_atoms = torch.tensor([len(g[K.POSITIONS]) for g in graphs], dtype=torch.float64)
    ref = outputs["float64"]
    rows = {}
    for name in variants:
        if name == "float64":
            continue
        e_err = ((outputs[name]["energy"] - ref["energy"]).abs() / n_atoms).max().item() * 1000
        f_err = ((outputs[name]["forces"] - ref["forces"]) ** 2).mean().sqrt().item()
        rows[name] = {**timing[name], "inference_ratio_to_float32": timing[name]["inference_s"] / timing["float32"]["inference_s"],
                      "step_ratio_to_float32": timing[name]["train_step_s"] / timing["float32"]["train_step_s"],
                      "max_energy_error_mev_atom_vs_float64": e_err, "force_rmse_error_ev_a_vs_float64": f_err}
        print(f"{name:14s} step x{rows[name]['step_ratio_to_float32']:.2f}  inference x{rows[name]['inference_ratio_to_float32']:.2f}"
              f"  |dE| {e_err:.3g} meV/atom  dF rmse {f_err:.3g} eV/Å (vs float64)")
    metrics_path = Path(a.run) / "test_metrics.json"
    model_errors = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    write_results("mixed_precision" + ("_cuda" if a.device == "cuda" else ""), {
        "run": repo_path(a.run),
        "n_structures": a.n, "device": a.device, "repeats": a.repeats, "float64": timing["float64"], "variants": rows,
        "model_test_rmse_e_mev_atom": model_errors.get("rmse_e_mev_atom"), "model_test_rmse_f_ev_a": model_errors.get("rmse_f_ev_a")})


if __name__ == "__main__":
    main()
