"""DDP with 2 CPU processes (gloo) gives the same gradients as 1 process on the same batch.

The workers rendezvous through a file in the test's tmp dir (no TCP port to race for) and the whole
spawn has a deadline: a hung worker fails the test instead of blocking CI. The workers shut down the
way the Trainer does (drop the DDP wrapper, then destroy_process_group_after_ddp): freeing DDP's
reducer after the group made about one run in ten hang at exit (gloo's destructor joining a thread
that waits for the GIL; py-spy stack in docs/training.md).
"""

from __future__ import annotations

import time
import weakref
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
    from hqc_qiskit.train import destroy_process_group_after_ddp

    dist.init_process_group(
        "gloo", init_method=f"file://{store_path}", rank=rank, world_size=world, timeout=timedelta(seconds=120)
    )
    torch.set_num_threads(1)
    model = build_model({**TINY_MODEL, "dtype": "float64"})
    model.load_state_dict(state)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    grads = _gradients(model, frames[rank::world], ddp)
    wrapper = weakref.ref(ddp)
    del ddp
    destroy_process_group_after_ddp()
    if rank == 0:
        torch.save({"grads": grads, "ddp_freed_before_destroy": wrapper() is None}, result_path)


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
    result = torch.load(path)
    assert result["ddp_freed_before_destroy"]
    ddp = result["grads"]
    assert set(ddp) == set(single)
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-9, atol=1e-12)


def _epoch_rows(run_dir):
    import csv

    with open(run_dir / "metrics.csv") as fh:
        return [{k: float(v) for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(fh)]


@pytest.mark.parametrize("micro", [None, 1], ids=["one_pass", "micro_batches"])
def test_torchrun_training_matches_single_process_and_exits(tiny_config, tmp_path, micro):
    """`torchrun --nproc_per_node 2 ... train` (docs/training.md) gives the single-process losses and RMSEs
    of every epoch (each rank takes half of each batch of equal-sized structures), and both ranks exit. With
    ``train.micro_batch_size: 1`` each rank trains its half in two passes and DDP syncs only after the second
    (``no_sync`` for the first): still the single-process numbers."""
    import subprocess
    import sys

    from hqc_qiskit.config import save_config
    from hqc_qiskit.train import Trainer

    single = tiny_config(train__max_epochs=2, output_dir=str(tmp_path / "single"))
    Trainer(single, progress=False).fit()
    config = tmp_path / "ddp.yaml"
    save_config(tiny_config(train__max_epochs=2, train__num_threads=1, train__micro_batch_size=micro,
                            output_dir=str(tmp_path / "ddp")), config)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "hqc_qiskit.cli", "train", str(config), "--no-progress"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun training did not exit within {DEADLINE_S:.0f} s; output:\n{exc.stderr}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_rows, single_rows = _epoch_rows(tmp_path / "ddp"), _epoch_rows(tmp_path / "single")
    assert len(ddp_rows) == len(single_rows) == 2
    for ddp_row, single_row in zip(ddp_rows, single_rows):
        assert ddp_row == pytest.approx(single_row, rel=1e-5)
