"""Batched density-matrix simulation of one noisy circuit for many parameter sets (torch).

Why hand-written: Aer simulates every parameter set as its own experiment (about 54 ms for an
8-qubit noisy readout on 2 cores), but the 64 circuits of a readout layer share every gate, every
noise channel and every weight; only the input rotations differ. Here they are one batch: each
instruction (gate, or noise channel from the same Aer noise model via ``qiskit_aer.utils.insert_noise``)
becomes a transfer matrix, consecutive ones on the same one or two qubits are multiplied together
first, and each product is applied to all density matrices of the batch in one matrix product.

Exact shortcuts, all because every circuit starts in |0...0> and only some qubits are measured:

* the operations on a qubit before its first two-qubit operation are single-qubit, so they commute
  with everything else and act on that qubit's own 2x2 state (this is where the input rotations go);
  the qubit joins the batch's state, as a tensor factor, at its first two-qubit operation;
* an unmeasured qubit is traced out after its last operation;
* consecutive transfer matrices on the same qubits are fused (at most two qubits per block).

States are held as real Pauli coefficients c_P = Tr(P rho) and channels as real Pauli transfer
matrices (a quarter of the arithmetic of complex superoperators), in chunks of the batch small enough
to stay in cache.

Conventions: a block on qubits ``L = [q_a, q_b]`` (the reversed qiskit qargs, so that qiskit's
little-endian gate matrices are read directly) is a matrix ``R`` of shape ``(..., 4^k, 4^k)`` indexed by
Pauli strings with ``L[0]`` most significant, ``R[P', P] = Tr(P' E(P)) / 2^k``. Equality with qiskit's
exact density-matrix evolution and with Aer's density-matrix method is tested (``tests/test_density.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression
from qiskit.quantum_info import Kraus, Operator

_SKIPPED = {"barrier", "delay", "id"}          # identity on the state (idle noise comes as explicit Kraus)
_CHUNK_BYTES = 4 * 2**20                         # state bytes per chunk of the batch (fits in L2/L3 cache)
_TILE_QUBITS = 7                                 # a larger state: blocks grouped on up to 7 qubits (0: no tiles)
_TILE_BYTES = 2**20                              # ... and applied to slabs of this many bytes


_PAULI_1Q = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])


@functools.cache
def _paulis(k: int) -> np.ndarray:
    """The 4^k Pauli strings on k qubits (4^k, 2^k, 2^k), index p_0 * 4^(k-1) + ... (first qubit most significant)."""
    out = np.ones((1, 1, 1))
    for _ in range(k):
        out = np.einsum("pab,qcd->pqacbd", out, _PAULI_1Q).reshape(out.shape[0] * 4, out.shape[1] * 2, -1)
    return out


def _ptm(kraus: np.ndarray) -> np.ndarray:
    """Pauli transfer matrix (..., 4^k, 4^k), R[P', P] = Tr(P' E(P)) / 2^k, of the channel E with Kraus
    matrices (..., r, 2^k, 2^k) (a unitary: r = 1). Real for every Hermiticity-preserving map."""
    d = kraus.shape[-1]
    paulis = _paulis(int(np.log2(d)))
    image = np.einsum("...rab,pbc,...rdc->...pad", kraus, paulis, kraus.conj())   # E(P) for every P
    r = np.einsum("qba,...pab->...qp", paulis, image) / d
    return np.ascontiguousarray(r.real)


def _rz(theta: np.ndarray) -> np.ndarray:
    """RZ matrices (..., 1, 2, 2) (one Kraus operator) for angles ``theta`` (...)."""
    out = np.zeros(np.shape(theta) + (1, 2, 2), dtype=complex)
    out[..., 0, 0, 0] = np.exp(-0.5j * theta)
    out[..., 0, 1, 1] = np.exp(0.5j * theta)
    return out


_VECTORISED = {"rz": _rz}


@dataclass
class _Step:
    """One instruction: ``ptm(values)`` -> (4^k, 4^k) or (K, 4^k, 4^k) on ``qubits`` (block order).

    For engines that rebuild the transfer matrices from torch parameter values (``quantum.heisenberg``): a
    constant instruction keeps its ``matrix``; an ``rz`` whose angle is affine in the circuit's parameters keeps
    ``angle`` = (offset, {parameter column: slope}); any other parameterised gate has neither."""

    qubits: tuple[int, ...]
    ptm: Callable[[np.ndarray], np.ndarray]
    matrix: np.ndarray | None = None
    angle: tuple[float, dict[int, float]] | None = None


def _expression_values(expr, parameters: list, values: np.ndarray) -> np.ndarray:
    """Value of a gate parameter for each row of ``values`` (K, P) (columns in ``parameters`` order): (K,)."""
    if not isinstance(expr, ParameterExpression):
        return np.full(values.shape[0], float(expr))
    free = list(expr.parameters)
    columns = [parameters.index(p) for p in free]
    if len(free) == 1:   # affine in its parameter (every transpiled rz: constant slope): vectorised
        slope = expr.gradient(free[0])
        if not isinstance(slope, ParameterExpression):
            offset = float(expr.bind({free[0]: 0.0}).numeric())
            return offset + float(slope) * values[:, columns[0]]
    rows = [float(expr.bind(dict(zip(free, row))).numeric()) for row in values[:, columns]]
    return np.asarray(rows)


def _affine_angle(expr, parameters: list) -> tuple[float, dict[int, float]] | None:
    """(offset, {column: slope}) when ``expr`` is affine in its parameters with numeric slopes, else None."""
    free = list(expr.parameters)
    slopes = {}
    for p in free:
        slope = expr.gradient(p)
        if isinstance(slope, ParameterExpression):
            return None
        slopes[parameters.index(p)] = float(slope)
    return float(expr.bind({p: 0.0 for p in free}).numeric()), slopes


def _parametric_step(inst, qubits, parameters: list) -> _Step:
    op = inst.operation
    if op.name in _VECTORISED and len(op.params) == 1:
        def ptm(values, expr=op.params[0], make=_VECTORISED[op.name]):
            theta = _expression_values(expr, parameters, values)
            if np.all(theta == theta[0]):      # e.g. a weight: the same for the whole batch
                return _ptm(make(theta[0]))
            return _ptm(make(theta))
        angle = _affine_angle(op.params[0], parameters) if op.name == "rz" else None
        return _Step(qubits, ptm, angle=angle)
    else:   # any other parameterised gate: bound row by row (correct, slower; no shipped profile needs it)
        def ptm(values, op=op):
            mats = []
            for row in values:
                bound = op.copy()
                bound.params = [float(_expression_values(p, parameters, row[None])[0]) for p in op.params]
                mats.append(Operator(bound).data[None])
            return _ptm(np.stack(mats))
    return _Step(qubits, ptm)


def _constant_step(inst, qubits, cache: dict) -> _Step:
    op = inst.operation
    if op.name == "quantum_channel":
        # insert_noise gives each gate its own instruction around one shared QuantumError per (gate, qubits);
        # converting that error to Kraus form takes ~30 ms, so it is done once per error
        error = getattr(op, "_quantum_error", op)
        if id(error) not in cache:
            cache[id(error)] = (error, _ptm(np.stack(Kraus(op).data)))
        r = cache[id(error)][1]
    elif op.name == "kraus":
        r = _ptm(np.stack([np.asarray(k, dtype=complex) for k in op.params]))
    else:
        r = _ptm(Operator(op).data[None])
    return _Step(qubits, lambda values, r=r: r, matrix=r)


def _compose(later: np.ndarray, later_q: tuple, earlier: np.ndarray, earlier_q: tuple) -> tuple[np.ndarray, tuple]:
    """Transfer matrix of ``earlier`` then ``later`` on the union of their qubits (at most 2), in ``later``'s order
    extended by ``earlier``'s other qubits. Broadcasts over a leading batch axis."""
    qubits = tuple(later_q) + tuple(q for q in earlier_q if q not in later_q)
    return _embed(later, later_q, qubits) @ _embed(earlier, earlier_q, qubits), qubits


def _embed(r: np.ndarray, qs: tuple, qubits: tuple) -> np.ndarray:
    """Transfer matrix ``r`` on ``qs`` as one on ``qubits`` (a superset, any order): identity elsewhere."""
    if tuple(qs) == tuple(qubits):
        return r
    k, n = len(qs), len(qubits)
    out_l = {q: "abcd"[i] for i, q in enumerate(qubits)}
    in_l = {q: "efgh"[i] for i, q in enumerate(qubits)}
    # numpy here, torch for the differentiable rebuild in quantum.heisenberg: the same arithmetic
    einsum, eye = ((torch.einsum, lambda: torch.eye(4, dtype=r.dtype)) if isinstance(r, torch.Tensor)
                   else (np.einsum, lambda: np.eye(4)))
    operands = [r.reshape(tuple(r.shape[:-2]) + (4,) * (2 * k))]
    specs = ["..." + "".join(out_l[q] for q in qs) + "".join(in_l[q] for q in qs)]
    for q in qubits:
        if q not in qs:
            operands.append(eye())
            specs.append(out_l[q] + in_l[q])
    result = "..." + "".join(out_l[q] for q in qubits) + "".join(in_l[q] for q in qubits)
    full = einsum(",".join(specs) + "->" + result, *operands)
    return full.reshape(tuple(full.shape[:-2 * n]) + (4**n, 4**n))


class BatchedDensityMatrix:
    """One circuit (parameters free) and its noise, compiled once; ``probabilities(values)`` for many rows.

    ``circuit`` must end with one ``save_probabilities`` (the measured qubits) and contain no mid-circuit
    measurement or reset; ``noise_model``'s quantum errors are inserted as Aer would apply them (after
    each gate). Readout error is not applied here (see ``simulate.apply_readout``)."""

    def __init__(self, circuit: QuantumCircuit, noise_model=None, precision: str = "double"):
        from qiskit_aer.utils import insert_noise

        if noise_model is not None and noise_model._custom_noise_passes:   # Aer has no public getter
            raise ValueError("batched density matrix: the noise model has custom noise passes (e.g. delay relaxation), "
                             "which insert_noise does not apply; write them into the circuit first "
                             "(simulate.explicit_idle_relaxation)")
        noisy = insert_noise(circuit, noise_model, transpile=False) if noise_model is not None else circuit
        self.n = circuit.num_qubits
        self.parameters = list(circuit.parameters)
        self.dtype = {"double": torch.float64, "single": torch.float32}[precision]
        self.measured: list[int] | None = None
        steps: list[_Step] = []
        cache: dict = {}
        for inst in noisy.data:
            name, qubits = inst.operation.name, tuple(noisy.find_bit(q).index for q in inst.qubits)
            if name == "save_probabilities":
                self.measured = list(qubits)
            elif name in _SKIPPED:
                continue
            elif name in ("measure", "reset") or inst.clbits or len(qubits) > 4:
                raise ValueError(f"batched density matrix: unsupported instruction {name!r} on {len(qubits)} qubits "
                                 "(only unitary gates and noise channels on up to 4 qubits, as in transpiled circuits, "
                                 "with save_probabilities at the end)")
            elif inst.operation.is_parameterized():
                steps.append(_parametric_step(inst, qubits[::-1], self.parameters))
            else:
                steps.append(_constant_step(inst, qubits[::-1], cache))
        if self.measured is None:
            raise ValueError("batched density matrix: the circuit needs save_probabilities(qubits) at the end")
        # each qubit's operations before its first multi-qubit one act on its own 2x2 state (all single-qubit)
        first_multi = {}
        for i, step in enumerate(steps):
            if len(step.qubits) > 1:
                for q in step.qubits:
                    first_multi.setdefault(q, i)
        in_prefix = [len(s.qubits) == 1 and i < first_multi.get(s.qubits[0], len(steps)) for i, s in enumerate(steps)]
        self.prefix = [s for s, p in zip(steps, in_prefix) if p]
        self.body = [s for s, p in zip(steps, in_prefix) if not p]

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """Distributions (K, 2^m) over the measured qubits (bit j of the index = measured qubit j, as Aer's
        ``save_probabilities``) for parameter rows ``values`` (K, P) in ``circuit.parameters`` order."""
        values = np.atleast_2d(np.asarray(values, dtype=float))
        states, blocks = self._plan(values)
        blocks = [(torch.as_tensor(r, dtype=self.dtype), qs) for r, qs in blocks]   # once, not per chunk or slab
        last = {q: i for i, (_, qs) in enumerate(blocks) for q in qs}
        # chunks small enough to stay in cache: the work is a few dozen passes over the whole state
        chunk = max(1, _CHUNK_BYTES // (4**self.n * self.dtype.itemsize))
        out = []
        # one circuit larger than the cache: consecutive blocks within _TILE_QUBITS qubits are applied together,
        # slab by slab of the other qubits' coefficients, so that memory is swept once per tile, not per block
        tiled = _TILE_QUBITS > 2 and chunk == 1 and 4**self.n * self.dtype.itemsize > _CHUNK_BYTES
        for start in range(0, values.shape[0], chunk):
            rows = slice(start, start + chunk)
            state = _PauliState.empty(len(values[rows]), self.dtype)
            i = 0
            while i < len(blocks):
                j, tile = i + 1, set(blocks[i][1])
                while tiled and j < len(blocks) and len(tile | set(blocks[j][1])) <= _TILE_QUBITS:
                    tile |= set(blocks[j][1])
                    j += 1
                for q in sorted(tile):  # a qubit joins the state (in its prefix's product state) when first needed
                    if q not in state.axes:
                        state.add(q, states[q][rows])
                group = [(r if r.ndim == 2 else r[rows], qs) for r, qs in blocks[i:j]]
                if tiled:
                    state.apply_tile(group, sorted(tile))
                else:
                    state.apply(*group[0])
                for q in sorted(tile):  # and an unmeasured one leaves it (partial trace) after its last operation
                    if last[q] < j and q not in self.measured:
                        state.trace_out(q)
                i = j
            for q in self.measured:     # measured qubits that never met another one
                if q not in state.axes:
                    state.add(q, states[q][rows])
            out.append(state.probabilities(self.measured))
        return np.concatenate(out)

    def _plan(self, values: np.ndarray) -> tuple[list[np.ndarray], list[tuple[np.ndarray, tuple]]]:
        """Each qubit's Pauli vector after its prefix (n arrays (K, 4)) and the fused transfer matrices of the
        body in order, as (matrix (4^k, 4^k) or (K, 4^k, 4^k), qubits)."""
        k = values.shape[0]
        states = [np.array([1.0, 0.0, 0.0, 1.0])] * self.n     # |0><0|: c_I = c_Z = 1
        for step in self.prefix:
            q = step.qubits[0]
            states[q] = np.einsum("...ij,...j->...i", step.ptm(values), states[q])
        return [np.broadcast_to(s, (k, 4)) for s in states], fuse([(step.ptm(values), step.qubits) for step in self.body])


def fuse(steps: list[tuple]) -> list[tuple]:
    """Consecutive transfer matrices (r, qubits) on the same one or two qubits multiplied together: the blocks
    (r, qubits) to apply in order, none on more than two qubits. numpy or torch matrices."""
    blocks = []
    pending: dict[int, tuple] = {}   # qubit -> (transfer matrix, block qubits)
    for r, qs in steps:
        touching = {pending[q][1]: pending[q][0] for q in qs if q in pending}
        for bq, br in touching.items():
            if set(bq) <= set(qs) or len(qs) == 1:     # fuse: the block acts just before this step
                r, qs = _compose(r, qs, br, bq)
            else:                                       # a two-qubit block with another qubit: emit it
                blocks.append((br, bq))
            for q in bq:
                pending.pop(q, None)
        for q in qs:
            pending[q] = (r, qs)
    blocks += [(br, bq) for bq, br in {v[1]: v[0] for v in pending.values()}.items()]
    return blocks


class _PauliState:
    """A batch of density matrices as real Pauli coefficients c_P = Tr(P rho), tensor (K, 4, ..., 4);
    ``axes[i]`` is the qubit of tensor axis 1 + i (kept in whatever order the last update left it). Only the
    qubits that are currently entangled with others (or measured) are held."""

    def __init__(self, c: torch.Tensor, axes: list[int]):
        self.c, self.axes = c, axes

    @classmethod
    def empty(cls, k: int, dtype: torch.dtype) -> "_PauliState":
        """K states on no qubits yet (the scalar 1)."""
        return cls(torch.ones((k,), dtype=dtype), [])

    def add(self, qubit: int, vector: np.ndarray) -> None:
        """Tensor a qubit in its own state, Pauli vectors (K, 4), onto the batch (a new last axis)."""
        v = torch.tensor(np.asarray(vector), dtype=self.c.dtype)
        self.c = (self.c.reshape(self.c.shape[0], -1, 1) * v[:, None, :]).reshape(self.c.shape + (4,))
        self.axes = self.axes + [qubit]

    def apply_tile(self, group: list[tuple[torch.Tensor, tuple]], tile: list[int]) -> None:
        """Apply the blocks of ``group`` in order (one state in the batch; tensors (4^k, 4^k) or (1, 4^k, 4^k)),
        all acting within the qubits ``tile``: the tile's axes are moved last once, and the blocks are applied to
        one cache-sized slab of rows (other qubits' Pauli indices) after another."""
        assert self.c.shape[0] == 1, "tiles are for one large state at a time"
        rest = [q for q in self.axes if q not in tile]
        m = len(tile)
        x = _permuted(self.c, [0] + [1 + self.axes.index(q) for q in rest + tile]).reshape(-1, 4**m)
        rows = max(1, _TILE_BYTES // (4**m * self.c.element_size()))
        for s0 in range(0, x.shape[0], rows):
            slab = _PauliState(x[s0:s0 + rows].reshape((-1,) + (4,) * m), list(tile))
            for r, qs in group:
                slab.apply(r[0] if r.ndim == 3 else r, qs)
            x[s0:s0 + rows] = _permuted(slab.c, [0] + [1 + slab.axes.index(q) for q in tile]).reshape(-1, 4**m)
        self.c = x.reshape(self.c.shape)
        self.axes = rest + tile

    def trace_out(self, qubit: int) -> None:
        """Partial trace over ``qubit``: the remaining coefficients are those with the identity on it."""
        axis = self.axes.index(qubit)
        self.c = self.c.select(1 + axis, 0).contiguous()
        self.axes = self.axes[:axis] + self.axes[axis + 1:]

    def apply(self, r: torch.Tensor, qs: tuple) -> None:
        """Apply transfer matrix ``r`` ((4^k, 4^k) or (K, 4^k, 4^k), the state's dtype) on qubits ``qs`` (block order). The
        target axes go first (R @ x with a long inner dimension is the fast matrix product here)."""
        rest = [q for q in self.axes if q not in qs]
        k, d = self.c.shape[0], 4 ** len(qs)
        x = _permuted(self.c, [0] + [1 + self.axes.index(q) for q in list(qs) + rest]).reshape(k, d, -1)
        self.c = torch.matmul(r, x).reshape(self.c.shape)
        self.axes = list(qs) + rest

    def probabilities(self, measured: list[int]) -> np.ndarray:
        """(K, 2^m) Z-basis distribution of ``measured`` (index bit j = measured[j]); other qubits traced out.
        p(b) = sum over P in {I, Z}^m of c_P prod_q (+-1) / 2^m; tracing out a qubit keeps its I component."""
        index = [[0, 3] if q in measured else [0] for q in self.axes]
        c = self.c
        for i, rows in enumerate(index):
            c = c.index_select(1 + i, torch.tensor(rows))
        c = c.reshape([c.shape[0]] + [len(rows) for rows in index if len(rows) == 2])
        kept = [q for q in self.axes if q in measured]
        # axes ordered so that measured[0] is the least significant bit of the flattened outcome index
        c = c.permute([0] + [1 + kept.index(q) for q in reversed(measured)])
        walsh = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=c.dtype) / 2
        for i in range(len(measured)):
            c = torch.movedim(torch.tensordot(c, walsh, dims=([1 + i], [1])), -1, 1 + i)
        return c.reshape(c.shape[0], -1).double().numpy()


def _permuted(t: torch.Tensor, order: list[int]) -> torch.Tensor:
    """``t.permute(order)`` for a contiguous tensor, with runs of axes that stay together merged first:
    the copy that follows then moves a few large blocks instead of iterating over 2n tiny axes."""
    runs: list[list[int]] = []
    for axis in order:
        if runs and runs[-1][-1] + 1 == axis:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    source = sorted(runs)
    shape = [int(np.prod([t.shape[a] for a in run])) for run in source]
    return t.reshape(shape).permute([source.index(run) for run in runs])
