"""The CUDA path equals the CPU path (skipped where torch sees no GPU; run on a lent GPU by scripts/gpu_check.sh)."""

from __future__ import annotations

import os

import pytest
import torch

from tests.conftest import TINY_MODEL

# The device compared with the CPU. HQC_CUDA_TEST_DEVICE=cpu (set by scripts/gpu_rehearsal.sh, never by CI) runs
# these tests' code CPU against CPU, so that a test broken by a change elsewhere fails there, before device time is
# spent on it; its comparisons then hold trivially and say nothing about CUDA.
DEVICE = os.environ.get("HQC_CUDA_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("ansatz", ["basic", "cx", "cz", "qft_cx", "qft_cz"])
def test_exact_engine_on_cuda_equals_cpu(ansatz):
    """<Z_q> and their input gradients of the exact engine, float64, on CUDA and CPU."""
    from hqc_qiskit.quantum.exact import z_expectations

    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(3, 8, generator=g, dtype=torch.float64) * 6 - 3
    outs = []   # CPU first, then DEVICE
    for device in ("cpu", DEVICE):
        xd = x.to(device).requires_grad_(True)
        z = z_expectations(ansatz, xd, w.to(device))
        (grad,) = torch.autograd.grad(z.square().sum(), xd)
        outs.append((z.detach().cpu(), grad.cpu()))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=0, atol=1e-11)


@pytest.mark.parametrize("readout", [{"kind": "classical", "hidden": 8},
                                     {"kind": "quantum", "ansatz": "cz", "engine": "exact", "n_layers": 1}])
def test_model_energy_and_forces_on_cuda_equal_cpu(readout, val_frames):
    """E and F of a tiny float64 model (classical or quantum readouts) on two structures, CUDA vs CPU."""
    from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device
    from hqc_qiskit.model.potential import build_model

    torch.manual_seed(0)
    model = build_model(dict(TINY_MODEL, readout=readout, dtype="float64"))
    graphs = [atoms_to_graph(a, 4.5, ["Si"]) for a in val_frames[:2]]
    outs = []   # CPU first, then DEVICE
    for device in ("cpu", DEVICE):
        m = model.to(device)
        out = m(to_device(collate(graphs), torch.device(device), torch.float64))
        outs.append((out["energy"].detach().cpu(), out["forces"].detach().cpu()))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=0, atol=1e-9)


def test_training_on_cuda_matches_cpu_and_checkpoints_load_on_cpu(tiny_config, tmp_path):
    """Two epochs of the tiny HQC config on CUDA and on CPU (float64): same losses; the CUDA run's best
    model evaluates on the CPU to the CUDA run's test metrics."""
    import json

    from hqc_qiskit.evaluate import evaluate
    from hqc_qiskit.train import Trainer

    from tests.conftest import DATA

    quantum = {"kind": "quantum", "ansatz": "cz", "engine": "exact", "n_layers": 1}
    summaries = {}
    for run, device in (("cpu", "cpu"), ("other", DEVICE)):
        cfg = tiny_config(output_dir=str(tmp_path / run), model__readout=quantum, model__dtype="float64",
                          train__device=device, train__max_epochs=2)
        trainer = Trainer(cfg, progress=False)
        assert trainer.device.type == device
        summaries[run] = trainer.fit()
    assert summaries["other"]["best_val_loss"] == pytest.approx(summaries["cpu"]["best_val_loss"], rel=1e-8)
    metrics = evaluate(tmp_path / "other", DATA / "si_liquid_3000K.test.extxyz.gz", device="cpu")
    saved = json.loads((tmp_path / "other" / "summary.json").read_text())["test"]
    assert metrics["rmse_f_ev_a"] == pytest.approx(saved["rmse_f_ev_a"], rel=1e-8)


def test_input_jacobian_on_cuda_equals_cpu(val_frames):
    """The shot-based forces' Jacobian (forward-mode autograd, chunk sized from CUDA's free memory) on CUDA."""
    from hqc_qiskit.model.potential import build_model
    from hqc_qiskit.quantum.circuit_inputs import input_jacobian

    torch.manual_seed(0)
    model = build_model(dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": "cz", "engine": "exact", "n_layers": 1},
                             dtype="float64")).eval()
    atoms = val_frames[0][:16]
    cpu = input_jacobian(model, atoms, stress=True)
    cuda = input_jacobian(model.to(DEVICE), atoms, stress=True)
    assert abs(cuda - cpu).max() < 1e-10 * max(1.0, abs(cpu).max())
