"""DDP with 2 CPU processes (gloo) gives the same gradients as 1 process on the same batch."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import TINY_MODEL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gradients(model, frames, ddp=None):
    from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device
    from hqc_qiskit.train import loss_fn

    batch = to_device(collate([atoms_to_graph(a, 4.5, ["Si"], with_labels=True) for a in frames]), "cpu", torch.float64)
    out = (ddp or model)(batch, compute_forces=True, create_graph=True)
    loss_fn(out, batch, 1.0, 100.0).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank, world, port, frames, state, result_path):
    from hqc_qiskit.model.potential import build_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
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
    mp.spawn(_worker, args=(2, _free_port(), frames, model.state_dict(), str(path)), nprocs=2, join=True)
    ddp = torch.load(path)
    assert set(ddp) == set(single)
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-9, atol=1e-12)
