"""DDP with 2 CPU processes (gloo) gives the same gradients as 1 process on the same batch.

The workers rendezvous through a file in the test's tmp dir (no TCP port to race for) and the whole
spawn has a deadline: a hung worker fails the test instead of blocking CI (a fresh-clone CI run once
hung here with one gloo worker idle).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import TINY_MODEL


DEADLINE_S = 240.0


def _gradients(model, frames, ddp=None):
    from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device
    from hqc_qiskit.train import loss_fn

    batch = to_device(collate([atoms_to_graph(a, 4.5, ["Si"], with_labels=True) for a in frames]), "cpu", torch.float64)
    out = (ddp or model)(batch, compute_forces=True, create_graph=True)
    loss_fn(out, batch, 1.0, 100.0).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank, world, store_path, frames, state, result_path):
    from hqc_qiskit.model.potential import build_model

    dist.init_process_group(
        "gloo", init_method=f"file://{store_path}", rank=rank, world_size=world, timeout=timedelta(seconds=120)
    )
    torch.set_num_threads(1)
    model = build_model({**TINY_MODEL, "dtype": "float64"})
    model.load_state_dict(state)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    grads = _gradients(model, frames[rank::world], ddp)
    if rank == 0:
        torch.save(grads, result_path)
    dist.destroy_process_group()


def test_ddp_two_processes_match_single(val_frames, tmp_path):
    from hqc_qiskit.model.potential import build_model

    torch.manual_seed(0)
    model = build_model({**TINY_MODEL, "dtype": "float64"})
    frames = val_frames[:4]
    single = _gradients(model, frames)
    path = tmp_path / "grads.pt"
    ctx = mp.spawn(
        _worker, args=(2, str(tmp_path / "store"), frames, model.state_dict(), str(path)), nprocs=2, join=False
    )
    deadline = time.monotonic() + DEADLINE_S
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail(f"DDP workers did not finish within {DEADLINE_S:.0f} s")
    ddp = torch.load(path)
    assert set(ddp) == set(single)
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-9, atol=1e-12)
