"""Shared helpers of the benchmark scripts: best-of-N timing and JSON output with machine info."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def best_time(fn, repeats: int = 3, warmup: int = 1) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def machine() -> dict:
    """Where the benchmark ran; the CPU model and package versions as a training run's summary.json has them."""
    from hqc_qiskit.environment import cpu_model, package_versions  # not at the top: the MACE worker imports this module

    return {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "versions": package_versions()}


def mace_env() -> dict:
    """The environment of a worker in the mace venv: its e3nn 0.4.4 loads its constants with pickle, which torch
    >= 2.6 refuses unless told."""
    return {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def run_json_worker(cmd: list[str], env: dict | None = None, live_stderr: bool = False) -> dict:
    """Run a benchmark worker process and return the last line of its output that is a JSON object; exit with the
    tail of its stderr (or a pointer to the live log above, ``live_stderr``) when it fails or prints none."""
    import json
    import subprocess

    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if live_stderr else subprocess.PIPE, text=True,
                         env=env, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{Path(cmd[1]).name} failed" + (" (see its log above)" if live_stderr else f":\n{out.stderr[-3000:]}"))
    return json.loads(lines[-1])


def repo_path(path: str | Path) -> str:
    """``path`` relative to the repository when inside it, else as given resolved: what results JSONs name (no
    machine's absolute checkout path in committed results)."""
    path = Path(path).resolve()
    return str(path.relative_to(RESULTS.parents[1])) if path.is_relative_to(RESULTS.parents[1]) else str(path)


def write_results(name: str, payload: dict) -> Path:
    from hqc_qiskit.checkpoint import atomic_write_json  # not at the top: the MACE worker imports this module

    path = RESULTS / f"{name}.json"
    atomic_write_json({"machine": machine(), **payload}, path)
    print(f"results: {path}")
    return path
