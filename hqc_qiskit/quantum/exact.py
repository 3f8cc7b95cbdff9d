"""Exact, batched, twice-differentiable torch engine compiled from the Qiskit circuit's instructions.

Why hand-written: no library gives a torch engine that is compiled from a Qiskit circuit, batched
over thousands of inputs and twice differentiable (force training needs d2E/dx dw); EstimatorQNN
cannot do double backward and is ~1000x slower (DESIGN section 5).

How: the inputs enter only through the RY(x_q) embedding on |0...0>, a real product state
psi(x) (B, 2^n_in). Everything after the embedding is a weight-dependent unitary U(w); we apply
its instructions, one by one, to the 2^n_in columns of U that the embedding can reach, giving
U_sub (2^n_total, 2^n_in). Then phi = U_sub psi, p = |phi|^2 and <Z_q> = p @ (1 - 2 bit_q).
When ancillas are eliminated as classical controls (``ancillas.py``), p is the probability-weighted
sum of |U_b psi|^2 over branches b. Nothing here knows about a particular ansatz: any circuit of that
form compiles.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression, ParameterVector
from qiskit.quantum_info import Operator
from torch import nn

from .ancillas import eliminate_ancillas
from .circuits import ansatz
from .steps import PARAMETRIC_GATES, Branch, Step as _Step, commutes_with_z


@dataclass
class CompiledCircuit:
    """A circuit reduced to: which qubit each input angle rotates, and the steps of U(w).

    The output distribution is sum_b probability_b |U_b(w) psi(x)|^2 over ``branches`` on a register
    of ``n_total`` qubits (one branch unless ancillas were eliminated as classical controls).
    """

    n_total: int
    input_qubits: list[int]  # input q rotates qubit input_qubits[q] (RY)
    branches: list[Branch]
    n_weights: int
    n_outputs: int
    n_circuit_qubits: int = 0  # width of the Qiskit circuit, before ancillas were eliminated

    @property
    def steps(self) -> list[_Step]:
        """The steps of a single-branch circuit."""
        if len(self.branches) != 1:
            raise ValueError(f"this circuit compiles to {len(self.branches)} branches; use .branches")
        return self.branches[0].steps


def _linear_in(expr, allowed: dict) -> tuple[int, float, float]:
    """(index, coeff, offset) of an expression that is linear in exactly one parameter of ``allowed``."""
    params = list(expr.parameters)
    if len(params) != 1 or params[0] not in allowed:
        raise ValueError(f"gate angle {expr} must depend on exactly one weight parameter")
    p = params[0]
    coeff = expr.gradient(p)
    if isinstance(coeff, ParameterExpression):
        raise ValueError(f"gate angle {expr} is not linear in {p}")
    offset = float(expr.bind({p: 0.0}))
    return allowed[p], float(coeff), offset


def compile_circuit(qc: QuantumCircuit, inputs: ParameterVector, weights: ParameterVector, n_outputs: int) -> CompiledCircuit:
    """Compile a circuit whose inputs enter only as RY(x_q) acting first on their qubit, from |0...0>."""
    input_of = {p: k for k, p in enumerate(inputs)}
    weight_of = {p: k for k, p in enumerate(weights)}
    input_qubits: list[int | None] = [None] * len(inputs)
    touched: set[int] = set()
    steps: list[_Step] = []
    for inst in qc.data:
        op = inst.operation
        qubits = tuple(qc.find_bit(q).index for q in inst.qubits)
        if op.name in ("barrier",):
            continue
        if op.name == "measure" or inst.clbits:
            raise ValueError("the exact engine expects a circuit without measurements")
        params = [p for p in op.params if isinstance(p, ParameterExpression)]
        uses_input = any(set(p.parameters) & set(input_of) for p in params)
        if uses_input:
            if op.name != "ry" or len(op.params[0].parameters) != 1 or op.params[0] not in input_of:
                raise ValueError(f"inputs must enter as RY(x_q) only; found {op.name}{op.params}")
            k = input_of[op.params[0]]
            if qubits[0] in touched or input_qubits[k] is not None:
                raise ValueError(f"input {op.params[0]} must be the first gate on qubit {qubits[0]} and used once")
            input_qubits[k] = qubits[0]
            touched.add(qubits[0])
            continue
        touched.update(qubits)
        if not params:
            steps.append(_Step(qubits, matrix=Operator(op).data))
        elif op.name in PARAMETRIC_GATES and len(op.params) == 1:
            index, coeff, offset = _linear_in(op.params[0], weight_of)
            steps.append(_Step(qubits, gate=op.name, weight_index=index, coeff=coeff, offset=offset))
        else:
            raise ValueError(
                f"gate {op.name} with parameters {op.params} is not supported by the exact engine; "
                f"weights may drive {sorted(PARAMETRIC_GATES)} (decompose other gates into these)"
            )
    if any(q is None for q in input_qubits):
        raise ValueError("every input parameter must appear in an RY gate")
    steps = _drop_unobservable_tail(steps, n_outputs)
    n_reduced, branches, new_index = eliminate_ancillas(steps, qc.num_qubits, set(input_qubits), n_outputs)
    branches = [Branch(b.probability, _fuse_monomial_runs(b.steps)) for b in branches]
    inputs_now = [new_index[q] for q in input_qubits]
    return CompiledCircuit(n_reduced, inputs_now, branches, len(weights), n_outputs, qc.num_qubits)


def _fuse_monomial_runs(steps: list[_Step]) -> list[_Step]:
    """Replace each run of consecutive constant gates whose product is monomial (a permutation with
    phases: CZ, CNOT, SWAP, X, S, T, ... rings and chains) by one gather-and-multiply step.

    Why: a CZ or CNOT ring of 8 gates costs 8 passes over the state; as one monomial step it costs one.
    Exact: the product is computed once, in complex128, with Qiskit's Operator.
    """
    out: list[_Step] = []
    for constant, group in itertools.groupby(steps, key=lambda step: step.matrix is not None):
        run = list(group)
        fused = _monomial(run) if constant and len(run) > 1 else None
        out.extend([fused] if fused is not None else run)
    return out


def _monomial(run: list[_Step]) -> _Step | None:
    """The run's product as a monomial step, or None when the product is not monomial."""
    qubits = sorted({q for step in run for q in step.qubits})
    if len(qubits) > 12:  # the product matrix would be too large to form
        return None
    position = {q: i for i, q in enumerate(qubits)}
    sub = QuantumCircuit(len(qubits))
    for step in run:
        sub.unitary(step.matrix, [position[q] for q in step.qubits])
    u = Operator(sub).data
    nonzero = np.abs(u) > 1e-12
    if not np.all(nonzero.sum(axis=1) == 1):
        return None
    source = np.argmax(nonzero, axis=1)
    return _Step(tuple(qubits), source=source, phase=u[np.arange(len(u)), source])


def _commutes_with_output_z(step: _Step, n_outputs: int) -> bool:
    """True when the gate commutes with Z_q for every output qubit q it acts on."""
    # |g_ij| <= 5e-13 off the Z_q blocks is what allclose(g Z, Z g, atol=1e-12) asked before
    return all(commutes_with_z(step, q, atol=5e-13) for q in step.qubits if q < n_outputs)


def _drop_unobservable_tail(steps: list[_Step], n_outputs: int) -> list[_Step]:
    """Remove gates that cannot change the joint distribution of the output bits (qubits < n_outputs).

    Walking back from the end: a gate that shares no qubit with a later kept gate can be moved to the
    end; there, if it commutes with every output Z_q (diagonal gates, gates on ancillas only, a CNOT's
    control side), it commutes with every output projector and drops out. Exact, not an approximation:
    e.g. the last CZ ring of the cz ansatz, or the last ancilla gates of the qft ansaetze. Why here: the
    cost of the engine is one state update per step.
    """
    kept: list[_Step] = []
    blocked: set[int] = set()
    for step in reversed(steps):
        if blocked.isdisjoint(step.qubits) and _commutes_with_output_z(step, n_outputs):
            continue
        kept.append(step)
        blocked.update(step.qubits)
    return kept[::-1]


@functools.lru_cache(maxsize=None)
def compiled_ansatz(name: str, n_qubits: int = 8, n_layers: int = 3) -> CompiledCircuit:
    qc, x, w = ansatz(name, n_qubits, n_layers)
    return compile_circuit(qc, x, w, n_qubits)


def _gate_axes(qubits: tuple[int, ...], n: int) -> list[int]:
    """Axes of a state [2]*n + [C] (axis a = qubit n-1-a) holding ``qubits``, most significant gate bit
    first: moved to the front and flattened, they index the gate matrix (bit j = qubit qubits[j])."""
    return [n - 1 - q for q in reversed(qubits)]


def _gate_rows(state: torch.Tensor, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """``state`` as (2^k, rest): row i is the gate-basis index i of ``qubits``."""
    return torch.movedim(state, _gate_axes(qubits, n), list(range(len(qubits)))).reshape(2 ** len(qubits), -1)


def _apply(state: torch.Tensor, gate: torch.Tensor, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """Apply a Qiskit-ordered gate matrix to ``state`` of shape [2]*n + [C] (axis a = qubit n-1-a)."""
    k = len(qubits)
    g = gate.reshape([2] * (2 * k))  # out bits then in bits, each ordered q_{k-1} .. q_0
    axes = _gate_axes(qubits, n)
    out = torch.tensordot(g, state, dims=(list(range(k, 2 * k)), axes))
    return torch.movedim(out, list(range(k)), axes)


def _apply_monomial(state: torch.Tensor, source: torch.Tensor, phase: torch.Tensor, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """out[i] = phase[i] * state[source[i]] on ``qubits`` (bit j of i = qubit qubits[j]); state [2]*n + [C]."""
    k = len(qubits)
    axes = _gate_axes(qubits, n)
    out = _gate_rows(state, qubits, n).index_select(0, source) * phase[:, None]
    out = out.reshape([2] * k + [s for a, s in enumerate(state.shape) if a not in axes])
    return torch.movedim(out, list(range(k)), axes)


class _ApplyParametricGate(torch.autograd.Function):
    """``_apply`` with the gate-matrix gradient summed in chunks, the chunk sums added in float64.

    Why: d(loss)/d(gate) sums grad_out * conj(state) over all 2^n_total * 2^n_in / 2^k other amplitudes
    (over 10^5 for a circuit on 11 qubits); one float32 reduction of that length lost up to 8e-6 in the weight
    gradients on some CPUs (MKL on AMD), above the 1e-6 agreement with EstimatorQNN we require.
    Chunks of 512 summed in float32 then in float64 keep it near 3e-7 at float32 speed. The backward is
    written with differentiable ops, so higher derivatives still work.
    """

    CHUNK = 512

    @staticmethod
    def forward(ctx, state, gate, qubits, n):
        ctx.save_for_backward(state, gate)
        ctx.qubits, ctx.n = qubits, n
        return _apply(state, gate, qubits, n)

    @staticmethod
    def backward(ctx, grad_out):
        state, gate = ctx.saved_tensors
        qubits, n = ctx.qubits, ctx.n
        k = len(qubits)
        grad_state = _apply(grad_out, gate.conj().transpose(0, 1), qubits, n) if ctx.needs_input_grad[0] else None
        grad_gate = None
        if ctx.needs_input_grad[1]:
            go, st = _gate_rows(grad_out, qubits, n), _gate_rows(state, qubits, n)
            n_chunks = max(1, go.shape[1] // _ApplyParametricGate.CHUNK)
            go = go.reshape(2**k, n_chunks, -1).transpose(0, 1)                     # (chunks, 2^k, L)
            st = st.reshape(2**k, n_chunks, -1).transpose(0, 1).conj().transpose(1, 2)  # (chunks, L, 2^k)
            wide = torch.complex128 if gate.dtype == torch.complex64 else gate.dtype
            grad_gate = torch.bmm(go, st).to(wide).sum(0).to(gate.dtype)          # grad_out @ state^H
        return grad_state, grad_gate, None, None


class ExactEngine(nn.Module):
    """<Z_q> of a compiled circuit for a batch of inputs. x: (B, n_in) radians; w: (n_weights,)."""

    def __init__(self, compiled: CompiledCircuit):
        super().__init__()
        self.compiled = compiled
        n, n_in = compiled.n_total, len(compiled.input_qubits)
        if sorted(compiled.input_qubits) != list(range(n_in)):
            # the column layout below assumes inputs on qubits 0..n_in-1 (true for every ansatz here)
            raise ValueError("the exact engine expects the inputs on qubits 0..n_in-1")
        bits = (np.arange(2**n)[:, None] >> np.arange(compiled.n_outputs)[None, :]) & 1
        self.register_buffer("z_signs", torch.tensor(1.0 - 2.0 * bits, dtype=torch.float64), persistent=False)
        for b, branch in enumerate(compiled.branches):
            for k, step in enumerate(branch.steps):
                if step.matrix is not None:
                    self.register_buffer(f"const_{b}_{k}", torch.tensor(step.matrix, dtype=torch.complex128), persistent=False)
                elif step.source is not None:
                    self.register_buffer(f"source_{b}_{k}", torch.tensor(step.source, dtype=torch.long), persistent=False)
                    self.register_buffer(f"phase_{b}_{k}", torch.tensor(step.phase, dtype=torch.complex128), persistent=False)

    def unitary_columns(self, w: torch.Tensor) -> torch.Tensor:
        """U_sub(w): (n_branches * 2^n_total, 2^n_in) complex: for each branch b, sqrt(p_b) times the
        columns of U_b reachable from the embedding, so that sum over rows of |U_sub psi|^2 per basis
        state is the output distribution."""
        c = self.compiled
        n, n_in = c.n_total, len(c.input_qubits)
        cdtype = torch.complex128 if w.dtype == torch.float64 else torch.complex64
        w = w.reshape(-1)
        blocks = []
        for b, branch in enumerate(c.branches):
            state = torch.zeros(2**n, 2**n_in, dtype=cdtype, device=w.device)
            state[: 2**n_in] = torch.eye(2**n_in, dtype=cdtype, device=w.device) * math.sqrt(branch.probability)
            state = state.reshape([2] * n + [2**n_in])
            for k, step in enumerate(branch.steps):
                if step.matrix is not None:
                    state = _apply(state, getattr(self, f"const_{b}_{k}").to(cdtype), step.qubits, n)
                elif step.source is not None:
                    source, phase = getattr(self, f"source_{b}_{k}"), getattr(self, f"phase_{b}_{k}").to(cdtype)
                    state = _apply_monomial(state, source, phase, step.qubits, n)
                else:
                    gate = PARAMETRIC_GATES[step.gate](step.coeff * w[step.weight_index] + step.offset)
                    state = _ApplyParametricGate.apply(state, gate, step.qubits, n)
            blocks.append(state.reshape(2**n, 2**n_in))
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=0)

    def columns(self, w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``unitary_columns`` for weights w (n_weights values, checked) in the complex type matching ``dtype``."""
        if w.numel() != self.compiled.n_weights:
            raise ValueError(f"expected {self.compiled.n_weights} weights, got {w.numel()}")
        return self.unitary_columns(w.to(dtype))

    def probabilities(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(B, 2^n_total) probabilities of all computational basis states."""
        return self.probabilities_from_columns(x, self.columns(w, x.dtype))

    def probabilities_from_columns(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(B, 2^n_total) probabilities for inputs x (B, n_in) given U_sub = unitary_columns(w)."""
        if x.shape[-1] != len(self.compiled.input_qubits):
            raise ValueError(f"expected inputs of shape (B, {len(self.compiled.input_qubits)}), got {tuple(x.shape)}")
        # product state of the RY embedding, little-endian: qubit q is bit q of the column index
        n_batch = x.shape[0]
        half_angles = torch.stack([torch.cos(x / 2), torch.sin(x / 2)], dim=-1)  # (B, n_in, 2)
        psi = half_angles[:, 0, :]                                              # (B, 2)
        for q in range(1, x.shape[-1]):
            psi = (half_angles[:, q, :, None] * psi[:, None, :]).reshape(n_batch, -1)  # (B, 2^(q+1))
        u_real = torch.cat([u.real, u.imag], dim=0)      # (2 * n_branches * 2^n, 2^n_in)
        n_states = 2**self.compiled.n_total
        phi = (psi @ u_real.T).view(n_batch, -1, n_states)  # (B, re/im x branch, 2^n); views, not slices: cheap backward
        return phi.pow(2).sum(dim=1)                     # (B, 2^n)

    def expectations_from_columns(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs) <Z_q> for inputs x (B, n_in) given U_sub = unitary_columns(w)."""
        return self.probabilities_from_columns(x, u) @ self.z_signs.to(x.dtype)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.expectations_from_columns(x, self.columns(w, x.dtype))  # (B, n_outputs)

    def output_distribution(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(B, 2^n_outputs): distribution of the measured output bits (bit q = output q), ancillas traced out."""
        probs = self.probabilities(x, w)
        return probs.reshape(probs.shape[0], -1, 2**self.compiled.n_outputs).sum(dim=1)


class ExactCircuit(nn.Module):
    """Trainable readout circuit: holds its weights (n_layers, n_qubits); maps (B, n_qubits) -> (B, n_qubits)."""

    supports_double_backward = True

    def __init__(self, name: str, n_qubits: int = 8, n_layers: int = 3, initial_weights: torch.Tensor | None = None):
        super().__init__()
        self.name, self.n_qubits, self.n_layers = name, n_qubits, n_layers
        self.engine = ExactEngine(compiled_ansatz(name, n_qubits, n_layers))
        if initial_weights is None:
            initial_weights = torch.rand(n_layers, n_qubits) * 2 * math.pi
        self.weight = nn.Parameter(torch.as_tensor(initial_weights, dtype=torch.get_default_dtype()).reshape(n_layers, n_qubits).clone())
        self._frozen: tuple[tuple, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.requires_grad:
            return self.engine(x, self.weight)
        # Frozen weights (inference: HQCCalculator, evaluate): U_sub(w) is the same for every call until
        # the weights change, and building it is most of a readout's cost for one structure.
        key = (self.weight._version, self.weight.data_ptr(), x.dtype, x.device)
        if self._frozen is None or self._frozen[0] != key:
            with torch.no_grad():
                self._frozen = (key, self.engine.columns(self.weight, x.dtype))
        return self.engine.expectations_from_columns(x, self._frozen[1])


@functools.lru_cache(maxsize=None)
def _engine(name: str, n_qubits: int, n_layers: int) -> ExactEngine:
    return ExactEngine(compiled_ansatz(name, n_qubits, n_layers))


def output_distribution(name: str, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Exact distribution (B, 2^n_qubits) of the measured outputs of ansatz ``name`` (bit q = output q)."""
    return _engine(name, w.shape[1], w.shape[0]).to(x.device).output_distribution(x, w)


def z_expectations(name: str, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """<Z_q> of ansatz ``name`` for inputs x (B, n_qubits) and weights w (n_layers, n_qubits) -> (B, n_qubits)."""
    if w.dim() != 2:
        raise ValueError(f"w must have shape (n_layers, n_qubits), got {tuple(w.shape)}")
    engine = _engine(name, w.shape[1], w.shape[0]).to(x.device)
    return engine(x, w)
