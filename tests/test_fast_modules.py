"""The faster implementations of e3nn modules compute e3nn's numbers (values and gradients), also for
irreps the paper's model does not use: biases, outputs no path reaches, many scalar partners."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from hqc_qiskit.model.conv_tp import GroupedUVUTensorProduct, SplitUVUTensorProduct
from hqc_qiskit.model.fused_linear import FusedLinear
from hqc_qiskit.model.interaction import uvu_instructions
from hqc_qiskit.model.scalar_tp import ScalarPartnerTensorProduct

HIDDEN = "3x0e + 2x0o + 3x1o + 2x1e + 2x2o + 1x2e"


def _assert_same(reference, fast, inputs, params):
    """Same outputs and same gradients (w.r.t. inputs and parameters) of a nonlinear loss, float64."""
    a, b = reference(*inputs), fast(*inputs)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    ga = torch.autograd.grad((a ** 3).sum(), [*inputs, *params[0]])
    gb = torch.autograd.grad((b ** 3).sum(), [*inputs, *params[1]])
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("irreps_in, irreps_out, biases", [
    (HIDDEN + " + 2x1o + 1x0e", HIDDEN, False),          # repeated input irreps: several paths per output
    ("4x0e + 2x1o", "5x0e + 2x1o + 1x2e", True),          # a bias, and an output no input reaches
])
def test_fused_linear_equals_e3nn(irreps_in, irreps_out, biases):
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        reference = o3.Linear(irreps_in, irreps_out, biases=biases)
        if biases:
            reference.bias.data.normal_()
        fast = FusedLinear(reference)
        assert set(fast.state_dict()) == set(reference.state_dict())
        x = torch.randn(5, reference.irreps_in.dim, requires_grad=True)
        _assert_same(reference, fast, [x], ([reference.weight], [fast.weight]))
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("kind, partner", [("uvw", "1x0e"), ("uvw", "3x0e"), ("uvw", "6x0e"), ("uvu", "7x0e")])
def test_scalar_partner_tensor_product_equals_e3nn(kind, partner):
    """'uvw' with few scalars (one-hot species) and many (the other contraction order), and 'uvu'."""
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        if kind == "uvw":
            reference = o3.FullyConnectedTensorProduct(HIDDEN, partner, HIDDEN)
        else:
            mid, instructions = uvu_instructions(o3.Irreps(HIDDEN), o3.Irreps(partner), o3.Irreps(HIDDEN))
            reference = o3.TensorProduct(HIDDEN, partner, mid, instructions, internal_weights=True)
        fast = ScalarPartnerTensorProduct(reference)
        assert set(fast.state_dict()) == set(reference.state_dict())
        x1 = torch.randn(6, reference.irreps_in1.dim, requires_grad=True)
        x2 = torch.randn(6, reference.irreps_in2.dim, requires_grad=True)
        _assert_same(reference, fast, [x1, x2], ([reference.weight], [fast.weight]))
    finally:
        torch.set_default_dtype(torch.float32)


def test_scalar_partner_refuses_non_scalar_partner():
    with pytest.raises(ValueError, match="0e scalars only"):
        ScalarPartnerTensorProduct(o3.FullyConnectedTensorProduct("2x0e + 1x1o", "1x1o", "2x0e + 1x1o"))


@pytest.mark.parametrize("impl", [GroupedUVUTensorProduct, SplitUVUTensorProduct])
def test_edge_tensor_products_sum_over_edges_like_e3nn(impl):
    """Edge tensor product summed onto receivers, against e3nn's module, with second derivatives
    (force training differentiates the forces)."""
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        irreps_sh = o3.Irreps.spherical_harmonics(3)
        mid, instructions = uvu_instructions(o3.Irreps(HIDDEN), irreps_sh, o3.Irreps(HIDDEN))
        reference = o3.TensorProduct(HIDDEN, irreps_sh, mid, instructions, shared_weights=False, internal_weights=False)
        fast = impl(reference)
        n, m = 5, 17
        x = torch.randn(n, reference.irreps_in1.dim, requires_grad=True)
        vec = torch.randn(m, 3, requires_grad=True)
        weights = torch.randn(m, reference.weight_numel, requires_grad=True)
        senders, receivers = torch.randint(0, n, (m,)), torch.randint(0, n, (m,))
        sh = o3.spherical_harmonics(irreps_sh, vec, normalize=True, normalization="component")

        def summed(module):
            if isinstance(module, GroupedUVUTensorProduct):
                return module.aggregate(x, sh, weights, senders, receivers)
            if isinstance(module, SplitUVUTensorProduct):
                blocks = module.blocks(x[senders], sh, weights)
                return torch.cat([x.new_zeros(n, b.shape[1]).index_add(0, receivers, b) for b in blocks], dim=1)
            return x.new_zeros(n, module.irreps_out.dim).index_add(0, receivers, module(x[senders], sh, weights))

        a, b = summed(reference), summed(fast)
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
        (da,) = torch.autograd.grad((a ** 2).sum(), vec, create_graph=True)
        (db,) = torch.autograd.grad((b ** 2).sum(), vec, create_graph=True)
        torch.testing.assert_close(da, db, atol=1e-10, rtol=1e-9)
        ga = torch.autograd.grad((da ** 2).sum(), [x, weights])
        gb = torch.autograd.grad((db ** 2).sum(), [x, weights])
        for p, q in zip(ga, gb):
            torch.testing.assert_close(p, q, atol=1e-9, rtol=1e-8)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("readout", [{"kind": "classical", "hidden": 8},
                                     {"kind": "quantum", "ansatz": "cz", "engine": "exact", "n_layers": 1}])
def test_model_trains_under_autocast(val_frames, readout):
    """torch.autocast with bfloat16 (on CPU here; the same code path as CUDA mixed precision): the force loss
    backpropagates to finite gradients and E, F stay close to float32. The edge sums accumulate in float32
    and the quantum circuit runs in the parameters' precision (both failed under autocast before)."""
    from conftest import TINY_MODEL

    from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device
    from hqc_qiskit.model.potential import build_model
    from hqc_qiskit.train import loss_fn

    torch.manual_seed(0)
    model = build_model(dict(TINY_MODEL, readout=readout))
    batch = to_device(collate([atoms_to_graph(a, 4.5, ["Si"], with_labels=True) for a in val_frames[:2]]), "cpu", torch.float32)
    ref = model(batch, compute_forces=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch, compute_forces=True, create_graph=True)
        loss = loss_fn(out, batch, 1.0, 100.0)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    de = (out["energy"].float() - ref["energy"]).abs().max()
    df = (out["forces"].float() - ref["forces"]).pow(2).mean().sqrt()
    assert 0 < de < 0.02 * ref["energy"].abs().max() + 0.05            # eV per structure; > 0: bf16 really ran
    assert df < 0.05 * ref["forces"].pow(2).mean().sqrt()
