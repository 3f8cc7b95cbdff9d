"""A trained model's training step and inference with subnormal floats flushed to zero and without
(train.flush_denormals; docs/performance.md section 12).

    python benchmarks/denormals.py [--run runs/converged/cmlp] [--threads 1,2] [--rounds 2] [--repeats 2]
        [--out denormals]

Session 44 found the paper CMLP's epochs growing from 519 to 1157 s over its first 7 epochs (one thread, same
machine): its backward pass produced subnormal floats (below 1.2e-38 in float32), which x86 CPUs compute in
microcode. This measures it: the run's config and its best model's weights (EMA), a training step of 20 training
structures in the config's passes, and energy + forces of 10 test structures one at a time (as MD and MC call the
model). Every measurement is a fresh process (flushing is per thread, inherited by the threads torch starts),
flushing and not alternating; median of the rounds of best-of-repeats; the ratio is flushed / not flushed.
Also counted: subnormal entries in the parameter gradients of the last unflushed step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import repo_path, run_json_worker, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_INFER = 20, 10


def worker(run: Path, flush: bool, threads: int, repeats: int) -> dict:
    import torch

    from hqc_qiskit.checkpoint import load_model, read_model_payload
    from hqc_qiskit.config import load_config
    from hqc_qiskit.train import Trainer, predict

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"data.max_train={N_TRAIN}", f"train.batch_size={N_TRAIN}", f"train.num_threads={threads}",
                     f"train.flush_denormals={str(flush).lower()}", f"output_dir={tmp}/run"]
        trainer = Trainer(load_config(run / "config.yaml", overrides), progress=False)   # flushes when told, first
        trainer.model.load_state_dict(read_model_payload(run, "best")[1]["model_state"])
        steps = []
        for _ in range(repeats + 1):   # the first is the warm-up
            t = time.perf_counter()
            trainer.train_epoch()
            steps.append(time.perf_counter() - t)
        tiny = torch.finfo(torch.float32).tiny
        subnormal = sum(int(((p.grad != 0) & (p.grad.abs() < tiny)).sum()) for p in trainer.model.parameters()
                        if p.grad is not None)
        model, graphs = load_model(run, flush_denormals=flush), trainer.graphs.test[:N_INFER]
        infer = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            predict(model, graphs, 1, "cpu", trainer.dtype, forces=True)
            infer.append(time.perf_counter() - t)
    return {"step_s": min(steps[1:]), "steps_s": steps, "inference_s": min(infer[1:]), "inference_all_s": infer,
            "subnormal_grad_entries": subnormal, "torch_threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "converged" / "cmlp",
                    help="a trained run directory (its config.yaml and best_model.pt)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="denormals")
    ap.add_argument("--worker", nargs=2, metavar=("FLUSH", "THREADS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.run, a.worker[0] == "1", int(a.worker[1]), a.repeats)))
        return
    if not (a.run / "config.yaml").exists() or not (a.run / "best_model.pt").exists():
        sys.exit(f"{a.run}: needs a trained run directory with config.yaml and best_model.pt")
    keys = [(threads, flush) for threads in map(int, a.threads.split(",")) for flush in (0, 1)]
    runs: dict[tuple, list[dict]] = {k: [] for k in keys}
    for r in range(a.rounds):
        for threads, flush in keys:
            out = run_json_worker([sys.executable, __file__, "--run", str(a.run), "--repeats", str(a.repeats),
                                   "--worker", str(flush), str(threads)])
            runs[(threads, flush)].append(out)
            print(f"round {r + 1}  threads {threads}  flush {'yes' if flush else 'no '}  step {out['step_s']:7.2f} s  "
                  f"inference {out['inference_s']:6.2f} s  subnormal gradient entries {out['subnormal_grad_entries']}",
                  flush=True)
    results = {}
    print(f"\n{a.run.name}: step of {N_TRAIN} structures and energy + forces of {N_INFER}, flushed / not flushed "
          f"(median of {a.rounds} rounds, best of {a.repeats} each)")
    for threads in dict.fromkeys(t for t, _ in keys):
        med = {(flush, what): statistics.median(x[what] for x in runs[(threads, flush)])
               for flush in (0, 1) for what in ("step_s", "inference_s")}
        results[str(threads)] = {
            **{name: {"step_s": med[(flush, "step_s")], "inference_s": med[(flush, "inference_s")],
                      "runs": runs[(threads, flush)]} for name, flush in (("not_flushed", 0), ("flushed", 1))},
            "step_ratio": med[(1, "step_s")] / med[(0, "step_s")],
            "inference_ratio": med[(1, "inference_s")] / med[(0, "inference_s")]}
        res = results[str(threads)]
        print(f"threads {threads}: step {med[(0, 'step_s')]:.2f} -> {med[(1, 'step_s')]:.2f} s (x{res['step_ratio']:.2f})  "
              f"inference {med[(0, 'inference_s')]:.2f} -> {med[(1, 'inference_s')]:.2f} s (x{res['inference_ratio']:.2f})")
    write_results(a.out, {"command": " ".join(sys.argv), "run": repo_path(a.run), "n_train": N_TRAIN, "n_inference": N_INFER, "rounds": a.rounds,
                          "repeats": a.repeats, "results": results})


if __name__ == "__main__":
    main()
