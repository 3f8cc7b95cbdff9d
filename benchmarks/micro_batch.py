"""Training step of one batch of 20 structures in one pass against passes of fewer (train.micro_batch_size).

    python benchmarks/micro_batch.py [--configs cmlp,hqc_cz,small_cmlp,small_l2_hqc_cz] [--micro 0,2,4,10]
        [--rounds 2] [--repeats 3] [--threads 2] [--mace-python .venv-mace/bin/python]

Each measurement is a fresh process (peak memory is per process): the project's Trainer on the first 20 training
structures with batch_size 20, so that one epoch is one optimizer step; one warm-up step, then the best of
--repeats steps. Micro-batch sizes alternate within each round, so machine drift hits all of them; per size the
median over rounds of those best times is reported, with its ratio to the whole batch (0 = one pass of 20).
The first step of every run starts from the same weights: its training loss must agree across sizes (float32
rounding; the largest relative difference is reported). With --mace-python, mace-torch's default model gets the
same treatment by benchmarks/_mace_worker.py (sizes 0 and 4), to tell what is this project's and what is the
CPU's. Output: benchmarks/results/micro_batch.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mace_env, run_json_worker, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz"
BATCH = 20


def worker(config: str, micro: int, repeats: int, threads: int) -> dict:
    """One process: time ``repeats`` training steps of ``config`` with passes of ``micro`` structures (0: one)."""
    import torch

    from hqc_qiskit.config import load_config
    from hqc_qiskit.train import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"data.max_train={BATCH}", f"train.batch_size={BATCH}", f"train.num_threads={threads}",
                     f"train.micro_batch_size={micro or 'null'}", f"output_dir={tmp}/run"]
        trainer = Trainer(load_config(ROOT / "runs" / f"{config}.yaml", overrides), progress=False)
        first = trainer.train_epoch()   # warm-up, from the initial weights
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(repeats):
            t = time.perf_counter()
            trainer.train_epoch()
            times.append(time.perf_counter() - t)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    # minor page faults: memory the kernel maps (and zeroes) for the process, e.g. every large tensor that the
    # C allocator takes from the kernel afresh instead of reusing freed memory
    return {"step_s": min(times), "all_s": times, "first_loss": first["train_loss"], "torch_threads": torch.get_num_threads(),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "minor_page_faults_per_step": faults / repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="cmlp,hqc_cz,small_cmlp,small_l2_hqc_cz")
    ap.add_argument("--micro", default="0,2,4,10", help="structures per pass; 0: the whole batch of 20 in one pass")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mace-python", default=None, help="python of the mace-torch venv (benchmarks/vs_mace.py says how "
                    "to make it); left out: no MACE rows")
    ap.add_argument("--out", default="micro_batch")
    ap.add_argument("--worker", nargs=2, metavar=("CONFIG", "MICRO"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), a.repeats, a.threads)))
        return
    sizes = [int(m) for m in a.micro.split(",")]
    if 0 not in sizes:
        sys.exit("--micro must include 0 (the whole batch), the reference of the ratios")
    jobs = {(c, m): [sys.executable, __file__, "--worker", c, str(m), "--repeats", str(a.repeats), "--threads",
                     str(a.threads)] for c in a.configs.split(",") for m in sizes}
    if a.mace_python:
        for m in (0, 4):
            jobs[("mace_default", m)] = [a.mace_python, str(ROOT / "benchmarks" / "_mace_worker.py"), "--data", str(DATA),
                                         "--n", str(BATCH), "--micro", str(m), "--repeats", str(a.repeats),
                                         "--threads", str(a.threads)]
    runs: dict[tuple, list[dict]] = {key: [] for key in jobs}
    for r in range(a.rounds):
        for key, cmd in jobs.items():
            out = run_json_worker(cmd, env=mace_env() if key[0] == "mace_default" else None)
            out["step_s"] = out.get("step_s", out.get("train_step_s"))
            runs[key].append(out)
            faults = (f"  {out['minor_page_faults_per_step'] / 1e6:.2f} M minor page faults per step"
                      if "minor_page_faults_per_step" in out else "")
            print(f"round {r + 1}  {key[0]:16s} micro {key[1] or BATCH:2d}  step {out['step_s']:7.2f} s  "
                  f"peak RSS {out['peak_rss_gb']:5.1f} GB{faults}", flush=True)
    results = {}
    for config in dict.fromkeys(c for c, _ in jobs):
        rows = {m: runs[(c, m)] for c, m in jobs if c == config}
        losses = [x["first_loss"] for rs in rows.values() for x in rs if "first_loss" in x]
        medians = {m: statistics.median(x["step_s"] for x in rs) for m, rs in rows.items()}
        results[config] = {
            "sizes": {str(m or BATCH): {"step_s": medians[m], "ratio_to_one_pass": medians[m] / medians[0],
                                        "peak_rss_gb": max(x["peak_rss_gb"] for x in rs), "runs": rs}
                      for m, rs in rows.items()},
            "first_loss_max_rel_diff": (max(abs(x / losses[0] - 1) for x in losses) if losses else None),
        }
    print(f"\nstep of {BATCH} structures: passes of m / one pass (median of {a.rounds} rounds, best of {a.repeats} each)")
    for config, res in results.items():
        line = "  ".join(f"m={m}: {v['step_s']:.2f} s x{v['ratio_to_one_pass']:.2f} {v['peak_rss_gb']:.1f} GB"
                         for m, v in res["sizes"].items())
        diff = res["first_loss_max_rel_diff"]
        print(f"{config:16s} {line}" + (f"   first-step loss rel diff {diff:.1e}" if diff is not None else ""))
    write_results(a.out, {"command": " ".join(sys.argv), "batch_size": BATCH, "rounds": a.rounds,
                          "repeats": a.repeats, "threads": a.threads, "results": results})


if __name__ == "__main__":
    main()
