"""Every engine agrees with the Qiskit reference (EstimatorQNN on the exact StatevectorEstimator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from hqc_qiskit.errors import EngineError
from hqc_qiskit.quantum.circuits import ansatz, ansatz_names, z_observables
from hqc_qiskit.quantum.exact import ExactCircuit, compile_circuit, z_expectations
from hqc_qiskit.quantum.qnn import QNNCircuit, build_estimator_qnn

B = 3


def _statevector_z(qc, x, w, xv, wv, n_out):
    """<Z_q> by Qiskit's Statevector with parameters bound by their vectors."""
    sv = Statevector(qc.assign_parameters({**dict(zip(x, xv)), **dict(zip(w, wv))}))
    return [sv.expectation_value(o).real for o in z_observables(n_out, qc.num_qubits)]


def _random(name, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-np.pi, np.pi, (B, 8)), rng.uniform(0, 2 * np.pi, (3, 8))


@pytest.fixture(scope="module")
def reference():
    """EstimatorQNN values, input and weight Jacobians for each ansatz (computed once: slow)."""
    out = {}
    for k, name in enumerate(ansatz_names()):
        x, w = _random(name, k)
        qnn = build_estimator_qnn(name)
        values = qnn.forward(x, w.reshape(-1))
        d_in, d_w = qnn.backward(x, w.reshape(-1))
        out[name] = (x, w, values, d_in, d_w)
    return out


@pytest.mark.parametrize("name", ansatz_names())
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-6)])
def test_exact_matches_estimator_qnn(reference, name, dtype, tol):
    x, w, values, d_in, d_w = reference[name]
    xt, wt = torch.tensor(x, dtype=dtype), torch.tensor(w, dtype=dtype)
    z = z_expectations(name, xt, wt)
    assert z.dtype == dtype
    np.testing.assert_allclose(z.double().numpy(), values, atol=tol)
    # Jacobians d<Z_q>/dx (B, 8, 8) and d<Z_q>/dw (B, 8, 24), against qiskit-machine-learning's gradients
    jac_x = torch.autograd.functional.jacobian(lambda xx: z_expectations(name, xx, wt), xt)  # (B, 8, B, 8)
    jac_x = torch.stack([jac_x[b, :, b, :] for b in range(B)])
    np.testing.assert_allclose(jac_x.double().numpy(), d_in, atol=tol)
    jac_w = torch.autograd.functional.jacobian(lambda ww: z_expectations(name, xt, ww.reshape(3, 8)), wt.reshape(-1))
    np.testing.assert_allclose(jac_w.double().numpy(), d_w, atol=tol)


def test_weight_binding_order_is_layer_then_qubit():
    """w[l*8+q] drives RX on qubit q in layer l, independent of Qiskit's name-sorted parameter order."""
    qc, x, w = ansatz("cz", 8, 3)
    rx = [(inst.operation.params[0], qc.find_bit(inst.qubits[0]).index) for inst in qc.data if inst.operation.name == "rx"]
    assert [p for p, _ in rx] == list(w)
    assert [q for _, q in rx] == list(range(8)) * 3
    # w[10] > w[1] in index but "w[10]" < "w[1]"... by name: binding by circuit.parameters order would scramble
    assert [p.name for p in qc.parameters][:3] == ["w[0]", "w[1]", "w[2]"]
    assert [p.name for p in qc.parameters].index("w[10]") == 10  # ParameterVector sorts by index, check it stays so
    rng = np.random.default_rng(1)
    xv, wv = rng.uniform(-3, 3, 8), rng.uniform(0, 6, 24)
    ref = _statevector_z(qc, x, w, xv, wv, 8)
    got = z_expectations("cz", torch.tensor(xv[None]), torch.tensor(wv.reshape(3, 8)))[0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # and a scrambled binding really gives a different answer (the test can fail)
    wrong = z_expectations("cz", torch.tensor(xv[None]), torch.tensor(wv.reshape(8, 3).T.copy()))[0].numpy()
    assert np.abs(wrong - ref).max() > 1e-3


def test_circuit_shapes():
    for name in ansatz_names():
        qc, x, w = ansatz(name)
        assert len(x) == 8 and len(w) == 24
        assert qc.num_qubits == (11 if name.startswith("qft") else 8)
        ops = qc.count_ops()
        two_q = ops.get("cx", 0) + ops.get("cz", 0)
        assert two_q == {"basic": 0, "cx": 24, "cz": 24, "qft_cx": 30, "qft_cz": 30}[name]
    qc, x, w = ansatz("cx", n_qubits=4, n_layers=2)
    assert qc.num_qubits == 4 and len(w) == 8


def test_new_ansatz_needs_only_a_registry_entry(monkeypatch):
    """The exact engine is compiled from instructions: a new ansatz in circuits.py just works."""
    from hqc_qiskit.quantum import circuits, exact

    def entangle(qc, n):
        for q in range(0, n - 1, 2):
            qc.cx(q, q + 1)
            qc.h(q)
            qc.rz(0.3, q + 1)

    monkeypatch.setitem(circuits.ANSAETZE, "pairs", circuits.AnsatzSpec(entangle))
    exact.compiled_ansatz.cache_clear()
    exact._engine.cache_clear()
    qc, x, w = ansatz("pairs", 6, 2)
    rng = np.random.default_rng(2)
    xv, wv = rng.uniform(-3, 3, 6), rng.uniform(0, 6, 12)
    ref = _statevector_z(qc, x, w, xv, wv, 6)
    got = z_expectations("pairs", torch.tensor(xv[None]), torch.tensor(wv.reshape(2, 6)))[0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_compile_rejects_unsupported_circuits():
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    x, w = ParameterVector("x", 2), ParameterVector("w", 1)
    qc = QuantumCircuit(2)
    qc.rx(x[0], 0)
    with pytest.raises(ValueError, match="RY"):
        compile_circuit(qc, x, w, 2)
    qc = QuantumCircuit(2)
    qc.ry(x[0], 0)
    qc.ry(x[1], 1)
    qc.crx(w[0], 0, 1)
    with pytest.raises(ValueError, match="crx.*not supported"):
        compile_circuit(qc, x, w, 2)


def test_exact_twice_differentiable():
    circ = ExactCircuit("cz").double()
    x = torch.rand(5, 8, dtype=torch.float64, requires_grad=True)
    z = circ(x).sum()
    (gx,) = torch.autograd.grad(z, x, create_graph=True)
    gx.sum().backward()
    assert circ.weight.grad is not None and circ.weight.grad.abs().sum() > 0


def test_qnn_circuit_module_matches_exact_and_refuses_double_backward():
    # TorchConnector keeps its weights in the default dtype (float32 here): start from values it holds exactly.
    # It also returns outputs and input gradients as torch.float (float32; qiskit-machine-learning 0.9.1,
    # torch_connector.py), so they agree with the float64 engine to float32 rounding, not to 1e-10
    # (EstimatorQNN itself, float64, is checked to 1e-10 above); unseeded, atol 1e-8 failed one run in ~30
    torch.manual_seed(0)
    init = (torch.rand(3, 8) * 6).double()
    exact, qnn = ExactCircuit("cx", initial_weights=init).double(), QNNCircuit("cx", initial_weights=init)
    x = torch.rand(2, 8, dtype=torch.float64, requires_grad=True)
    float32 = dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(qnn(x).detach().numpy(), exact(x).detach().numpy(), **float32)
    # first derivatives are fine
    (g_qnn,) = torch.autograd.grad(qnn(x).sum(), x)
    (g_exact,) = torch.autograd.grad(exact(x).sum(), x)
    assert g_exact.abs().max() > 0.05   # gradients large enough for the comparison to mean something
    np.testing.assert_allclose(g_qnn.numpy(), g_exact.numpy(), **float32)
    # second derivatives raise a clear error naming the exact engine
    lin = torch.nn.Linear(8, 1).double()
    e = lin(qnn(x)).sum()
    with pytest.raises(EngineError, match="engine: exact"):
        torch.autograd.grad(e, x, create_graph=True)


def test_quantum_readout_angle_scale():
    """angle_scale multiplies the embedding angles; 1.0 (default) is the paper's readout."""
    from hqc_qiskit.model.readouts import QuantumReadout

    torch.manual_seed(0)
    scaled = QuantumReadout(6, ansatz="cz", n_qubits=4, n_layers=2, angle_scale=2.5).double()
    h = torch.randn(7, 6, dtype=torch.float64)
    expected = scaled.decode(scaled.circuit(2.5 * scaled.encode(h))).squeeze(-1)
    torch.testing.assert_close(scaled(h), expected)
    plain = QuantumReadout(6, ansatz="cz", n_qubits=4, n_layers=2).double()
    plain.load_state_dict(scaled.state_dict())
    assert (plain(h) - scaled(h)).abs().max() > 1e-3


def test_frozen_exact_circuit_reuses_its_unitary_and_notices_weight_changes():
    """With frozen weights (inference) the circuit unitary is built once; outputs and input gradients are
    those of the trainable path, and an in-place weight change is seen at the next call."""
    torch.manual_seed(3)
    circuit = ExactCircuit("cz").double()
    x = torch.rand(5, 8, dtype=torch.float64, requires_grad=True)
    trainable = circuit(x)
    (grad_trainable,) = torch.autograd.grad(trainable.sum(), x)
    circuit.requires_grad_(False)
    frozen = circuit(x)
    (grad_frozen,) = torch.autograd.grad(frozen.sum(), x)
    torch.testing.assert_close(frozen, trainable, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_frozen, grad_trainable, atol=1e-12, rtol=0)
    cached = circuit._frozen[1]
    circuit(x)
    assert circuit._frozen[1] is cached                       # reused, not rebuilt
    with torch.no_grad():
        circuit.weight.add_(0.3)
    moved = circuit(x)
    assert circuit._frozen[1] is not cached
    torch.testing.assert_close(moved, z_expectations("cz", x.detach(), circuit.weight), atol=1e-12, rtol=0)
    assert (moved - frozen).abs().max() > 1e-3
    for trainable in (False, True):   # both paths check the input width
        circuit.requires_grad_(trainable)
        with pytest.raises(ValueError, match=r"expected inputs of shape \(B, 8\)"):
            circuit(torch.rand(5, 7, dtype=torch.float64))


def test_compiler_drops_only_gates_the_outputs_cannot_see():
    """Trailing gates that commute with every output Z (diagonal ones, ancilla-only ones) are dropped;
    runs of constant gates are fused only when their product is monomial; the joint output
    distribution stays the Statevector marginal."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    from hqc_qiskit.quantum.exact import ExactEngine, compiled_ansatz

    # 24 RX each; the last CZ ring is diagonal and dropped, a CNOT ring's targets are outputs (kept);
    # each remaining ring is a permutation with phases, fused into one step
    cz, cx = compiled_ansatz("cz", 8, 3).steps, compiled_ansatz("cx", 8, 3).steps
    assert [s.gate or len(s.qubits) for s in cz] == (["rx"] * 8 + [8]) * 2 + ["rx"] * 8
    assert [s.gate or len(s.qubits) for s in cx] == (["rx"] * 8 + [8]) * 3
    assert all(s.source is not None for s in cz + cx if s.gate is None)
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = QuantumCircuit(3)                 # qubits 0, 1 are outputs, 2 is an ancilla
    qc.ry(x[0], 0)
    qc.ry(x[1], 1)
    qc.h(2)
    qc.cx(2, 0)                            # kept: the ancilla feeds an output
    qc.rx(w[0], 1)
    qc.cz(0, 1)                            # kept: the H below makes it observable
    qc.h(0)
    qc.rz(w[1], 1)                         # dropped: diagonal on an output
    qc.cx(1, 2)                            # dropped: control on an output, target an ancilla
    qc.rx(w[2], 2)                         # dropped: ancilla only
    compiled = compile_circuit(qc, x, w, 2)
    # the three trailing gates are gone; the ancilla (in |+>, then only a CNOT control) is eliminated
    # as a classical control: one branch without and one with an X on qubit 0
    assert compiled.n_total == 2
    assert [[s.gate or len(s.qubits) for s in b.steps] for b in compiled.branches] == [["rx", 2, 1], [1, "rx", 2, 1]]
    xv, wv = np.array([0.7, -1.3]), np.array([0.4, 1.1, 2.2])
    sv = Statevector(qc.assign_parameters({**dict(zip(x, xv)), **dict(zip(w, wv))}))
    expected = sv.probabilities([0, 1])    # little-endian: index = bit0 + 2 * bit1
    got = ExactEngine(compiled).double().output_distribution(torch.tensor(xv[None]), torch.tensor(wv))[0]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def _marginal_check(qc, x, w, n_outputs, seed=0):
    """Exact engine vs Statevector marginal of the outputs for random inputs and weights."""
    from hqc_qiskit.quantum.exact import ExactEngine

    rng = np.random.default_rng(seed)
    compiled = compile_circuit(qc, x, w, n_outputs)
    engine = ExactEngine(compiled).double()
    for _ in range(3):
        xv, wv = rng.uniform(-3, 3, len(x)), rng.uniform(0, 6, len(w))
        sv = Statevector(qc.assign_parameters({**dict(zip(x, xv)), **dict(zip(w, wv))}))
        got = engine.output_distribution(torch.tensor(xv[None]), torch.tensor(wv))[0].numpy()
        np.testing.assert_allclose(got, sv.probabilities(list(range(n_outputs))), atol=1e-12)
    return compiled


def test_ancilla_elimination_of_the_qft_ansaetze():
    """qft_cx: the ancillas stay in |+++> (CNOT targets), so they drop out; qft_cz: ancilla 8 is a CZ
    control in |+>, two equally likely branches of the 8-qubit circuit; ancillas 9, 10 add only phases."""
    from hqc_qiskit.quantum.exact import compiled_ansatz

    qft_cx, qft_cz, cx = compiled_ansatz("qft_cx", 8, 3), compiled_ansatz("qft_cz", 8, 3), compiled_ansatz("cx", 8, 3)
    assert (qft_cx.n_circuit_qubits, qft_cx.n_total, len(qft_cx.branches)) == (11, 8, 1)
    assert (qft_cz.n_total, [b.probability for b in qft_cz.branches]) == (8, pytest.approx([0.5, 0.5]))
    assert len(qft_cx.steps) == len(cx.steps)            # a CNOT chain instead of a ring: same step count
    for name in ("qft_cx", "qft_cz"):
        qc, x, w = ansatz(name, 4, 2)
        assert _marginal_check(qc, x, w, 4).n_total == 4


def test_ancilla_rules_on_hand_made_circuits():
    """Each rule against the Statevector marginal, including circuits where it must not fire."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    x, w = ParameterVector("x", 2), ParameterVector("w", 2)

    def base(n):
        qc = QuantumCircuit(n)
        qc.ry(x[0], 0)
        qc.ry(x[1], 1)
        qc.rx(w[0], 1)
        return qc

    qc = base(3)                       # rule 1 with a gate left over: control in |1> -> X on qubit 0
    qc.x(2)
    qc.cx(2, 0)
    qc.cz(0, 1)
    qc.rx(w[1], 0)
    c = _marginal_check(qc, x, w, 2)
    assert c.n_total == 2 and len(c.branches) == 1
    qc = base(3)                       # a weight rotates the ancilla, which then feeds an output: kept
    qc.rx(w[1], 2)
    qc.cx(2, 0)
    qc.h(0)
    assert _marginal_check(qc, x, w, 2).n_total == 3
    qc = base(4)                       # Bell pair of ancillas: 2 is a classical control, 3 is live
    qc.h(2)
    qc.cx(2, 3)
    qc.cx(3, 0)
    qc.h(3)
    qc.cz(3, 1)
    qc.rx(w[1], 1)
    c = _marginal_check(qc, x, w, 2)
    assert c.n_total == 3 and len(c.branches) == 2
    qc = base(3)                       # ancilla in a non-uniform state: branch weights cos^2, sin^2
    qc.ry(0.8, 2)
    qc.cx(2, 1)
    qc.h(1)
    qc.rx(w[1], 0)
    c = _marginal_check(qc, x, w, 2)
    assert sorted(b.probability for b in c.branches) == pytest.approx(sorted([np.cos(0.4) ** 2, np.sin(0.4) ** 2]))
