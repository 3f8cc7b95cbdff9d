"""Shared fixtures: tiny models and a few frames of the shipped data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "si_liquid_3000K"

TINY_MODEL = dict(
    species=["Si"], cutoff=4.5, lmax=2, embedding_dim=8, hidden_irreps="8x0e + 4x1o + 2x2e",
    n_layers=2, radial_mlp=[16], readout={"kind": "classical", "hidden": 8},
)


def threads_per_worker() -> int:
    """Torch threads of one test process: 2 (the CI machine's cores) or fewer, so that the pytest-xdist workers
    (``PYTEST_XDIST_WORKER_COUNT``; 1 without xdist) do not ask for more threads than this machine has cores."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, cores // workers))


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(threads_per_worker())


# Under pytest-xdist the summary line leaves out what -m deselected (the workers collect and deselect, the controller
# reports): each worker sends its count back through xdist's workeroutput and the controller prints it. Every worker
# collects the whole suite, so any one worker's count is the run's.
_deselected = {"here": 0, "workers": 0}


def pytest_deselected(items):
    _deselected["here"] += len(items)


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):   # an xdist worker
        session.config.workeroutput["deselected"] = _deselected["here"]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):   # xdist's hook, on the controller
    _deselected["workers"] = max(_deselected["workers"], getattr(node, "workeroutput", {}).get("deselected", 0))


def pytest_terminal_summary(terminalreporter):
    if _deselected["workers"]:
        terminalreporter.write_line(f"{_deselected['workers']} deselected (by -m or -k; the default leaves out the "
                                    "slow tests: -m slow runs them)")


@pytest.fixture(scope="session")
def val_frames():
    from hqc_qiskit.data.dataset import load_labelled

    return load_labelled(DATA / "si_liquid_3000K.val.extxyz.gz")


@pytest.fixture
def tiny_config(tmp_path):
    """A RunConfig on 8 train / 4 val / 4 test frames of the shipped data, writing to tmp_path."""
    from hqc_qiskit.config import load_config

    raw = {
        "name": "tiny", "seed": 1, "output_dir": str(tmp_path / "run"),
        "data": {"train": str(DATA / "si_liquid_3000K.val.extxyz.gz"), "val": str(DATA / "si_liquid_3000K.test.extxyz.gz"),
                 "test": str(DATA / "si_liquid_3000K.test.extxyz.gz"), "max_train": 8, "max_val": 4},
        "model": dict(TINY_MODEL),
        "train": {"batch_size": 4, "max_epochs": 3, "lr": 0.01, "ema_decay": 0.9},
    }
    return lambda **over: load_config(raw=_merge(raw, over))


def _merge(base: dict, over: dict) -> dict:
    import copy

    out = copy.deepcopy(base)
    for key, value in over.items():
        node = out
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def squashed(text: str) -> str:
    """``text`` without whitespace: Rich wraps CLI messages at the terminal width, breaking long paths
    anywhere, so a message with a path is compared with its whitespace removed."""
    return "".join(text.split())


def tiny_hqc_checkpoint(tmp_path):
    """An untrained tiny HQC model (cz, 1 layer, float64) and the checkpoint file it was saved to."""
    from hqc_qiskit.checkpoint import atomic_save, model_payload
    from hqc_qiskit.model.potential import build_model

    torch.manual_seed(0)
    cfg = dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": "cz", "engine": "exact", "n_layers": 1}, dtype="float64")
    model = build_model(cfg)
    path = tmp_path / "hqc.pt"
    atomic_save(model_payload(model), path)
    return model, path
