"""A noisy readout's coefficients from its observables evolved backwards (Heisenberg picture), in torch.

Why hand-written (project science): the noisy <Z_p>(x) of a transpiled readout is multilinear in the
per-input vectors (1, cos x_q, sin x_q) (``quantum.noisy_readout``); its 3^n x m coefficients C were first
obtained by simulating the 3^n grid circuits forwards. The same numbers follow from m backward evolutions:
<Z_p> = Tr(O_p E(rho(x))) = Tr(E^dagger(O_p) rho(x)), with O_p the measured observable (readout error
folded in: an affine function of I and Z on the output qubit) and rho(x) the product of the qubits' states
after their single-qubit prefixes, each affine in (1, cos x_q, sin x_q). In the real Pauli basis a channel
is its transfer matrix R and its adjoint is R^T; contracting E^dagger(O_p) with each input qubit's 4 x 3
prefix matrix gives C[:, p] directly. The work is that of m circuits instead of 3^n (for 8 qubits:
8 against 6561).

Everything is rebuilt from torch values of the circuit weights, so C is differentiable in them: the
circuit weights can be trained through the device's noise (``NoisyCircuit`` with trainable weights).

The circuit, its noise channels (Aer's, via ``insert_noise``), idle relaxation and the fusion of
consecutive transfer matrices are those of :class:`.density.BatchedDensityMatrix`; equality with the grid
construction and with direct simulation is tested (``tests/test_heisenberg.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import EngineError
from .density import BatchedDensityMatrix, fuse

# The backward pass of the weight gradient keeps the intermediate observable vectors of the sweep: measured
# (benchmarks/heisenberg_scale.py) about this many full-size m x 4^q vectors at peak, 11.2 GiB above the process
# for the 8-output cz readout on the 12 qubits of the whole-chip Eagle profile (0.2 GiB on the 8 of the compact one)
GRADIENT_VECTORS = 11
_GROUND = (1.0, 0.0, 0.0, 1.0)          # |0><0| in Pauli coefficients (I, X, Y, Z)
_IDENTITY = (1.0, 0.0, 0.0, 0.0)        # the identity observable


def _rz_ptm(theta: torch.Tensor) -> torch.Tensor:
    """Pauli transfer matrices (..., 4, 4) of RZ(theta): X -> cos X + sin Y, Y -> cos Y - sin X."""
    c, s = torch.cos(theta), torch.sin(theta)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rows = [[one, zero, zero, zero], [zero, c, -s, zero], [zero, s, c, zero], [zero, zero, zero, one]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def observable_vector(confusion: np.ndarray) -> np.ndarray:
    """The measured Z of one qubit with readout confusion [prepared, measured] as Pauli coefficients (I, X, Y, Z):
    f(b) = p(0|b) - p(1|b) is the mean measured value for prepared bit b, O = (f0 + f1)/2 I + (f0 - f1)/2 Z."""
    f = confusion[:, 0] - confusion[:, 1]
    return np.array([(f[0] + f[1]) / 2, 0.0, 0.0, (f[0] - f[1]) / 2])


class HeisenbergReadout:
    """One transpiled readout under one reduced noise model: ``coefficients(weights)`` -> C (3^n, m), torch.

    ``sim`` is the readout's :class:`.simulate.ReducedSimulator` (its measured circuit with idle relaxation
    written in, its noise model and readout confusion). Raises EngineError when the transpiled circuit does
    not have the structure the construction needs (each input in one rz, slope +-1, before its qubit's first
    two-qubit gate; every other parameterised gate an rz affine in the weights)."""

    def __init__(self, sim, dtype: torch.dtype = torch.float64):
        tr = sim.tr
        compiled = BatchedDensityMatrix(sim.circuit, sim.noise.model)
        self.dtype, self.name = dtype, f"{tr.ansatz} on {tr.profile.name}"
        self.n_inputs, self.n_weights = len(tr.inputs), len(tr.weights)
        self.prefix, self.body, self.measured = compiled.prefix, compiled.body, compiled.measured
        params = compiled.parameters
        self._input_col = {params.index(p): i for i, p in enumerate(tr.inputs) if p in params}
        self._weight_col = {params.index(p): k for k, p in enumerate(tr.weights) if p in params}
        self._n_params = len(params)
        self.n_qubits = compiled.n                  # qubits the transpiled, reduced circuit touches
        self.qubit_input = self._check(compiled.n)
        obs = np.stack([observable_vector(c) for c in sim.confusion])                 # (m, 4)
        self._joins = {}                                                               # qubit -> (m, 4)
        for q in range(compiled.n):
            v = np.tile(np.array(_IDENTITY), (len(self.measured), 1))
            if q in self.measured:
                v[self.measured.index(q)] = obs[self.measured.index(q)]
            self._joins[q] = torch.as_tensor(v, dtype=dtype)
        self._matrices = {id(s): torch.as_tensor(s.matrix, dtype=dtype) for s in self.prefix + self.body
                          if s.matrix is not None}
        grid = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3])        # noisy_readout.GRID_ANGLES
        basis = np.stack([np.ones(3), np.cos(grid), np.sin(grid)], axis=1)
        self._grid = torch.as_tensor(grid, dtype=dtype)
        self._basis_inverse = torch.as_tensor(np.linalg.inv(basis), dtype=dtype)

    def gradient_bytes(self) -> int:
        """Estimated peak memory (bytes) that one weight gradient of the coefficients keeps for its backward pass:
        GRADIENT_VECTORS observable vectors of m x 4^q entries (m outputs, q qubits touched)."""
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return GRADIENT_VECTORS * len(self.measured) * 4**self.n_qubits * itemsize

    def _check(self, n_qubits: int) -> dict[int, int]:
        """Which input each qubit's prefix holds ({qubit: input}); refuses circuits outside the construction."""
        where = {}
        for place, steps in (("prefix", self.prefix), ("body", self.body)):
            for step in steps:
                if step.matrix is None and step.angle is None:
                    raise EngineError(f"noisy readout of {self.name}: a parameterised gate other than rz on qubits "
                                      f"{step.qubits}; the Heisenberg construction rebuilds only rz from the weights")
                for col, slope in (step.angle[1].items() if step.angle else ()):
                    if col in self._input_col:
                        i = self._input_col[col]
                        if place == "body" or abs(abs(slope) - 1.0) > 1e-12 or i in where:
                            raise EngineError(f"noisy readout of {self.name}: input {i} enters the transpiled circuit "
                                              "other than once, as a +-1 rz angle before its qubit's first two-qubit "
                                              "gate; its expectation values are then not multilinear in "
                                              "(1, cos x, sin x)")
                        where[i] = step.qubits[0]
        qubit_input = {q: i for i, q in where.items()}
        if len(qubit_input) != len(where):
            raise EngineError(f"noisy readout of {self.name}: two inputs on the prefix of one qubit")
        return qubit_input

    def _ptm(self, step, values: torch.Tensor) -> torch.Tensor:
        """The step's transfer matrix, (4^k, 4^k), or (R, 4, 4) for an rz on parameter rows ``values`` (R, P)."""
        if step.matrix is not None:
            return self._matrices[id(step)]
        offset, slopes = step.angle
        theta = offset + sum(slope * values[:, col] for col, slope in slopes.items())
        return _rz_ptm(theta if isinstance(theta, torch.Tensor) else torch.full((len(values),), theta, dtype=self.dtype))

    def _values(self, weights: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Parameter rows (R, P): every input column = ``inputs`` (R,), weight columns from ``weights`` (n_w,)."""
        zero = torch.zeros_like(inputs)
        cols = []
        for col in range(self._n_params):
            if col in self._input_col:
                cols.append(inputs)
            elif col in self._weight_col:
                cols.append(weights[self._weight_col[col]].expand_as(inputs))
            else:
                cols.append(zero)
        return torch.stack(cols, dim=1) if cols else inputs[:, None][:, :0]

    def coefficients(self, weights) -> torch.Tensor:
        """C (3^n, m) of the noisy <Z_p> for circuit weights (n_layers, n_qubits) or flat (n_w,), rad; differentiable
        in ``weights`` when it is a tensor that requires grad."""
        w = torch.as_tensor(weights, dtype=self.dtype).reshape(-1)
        if w.numel() != self.n_weights:
            raise EngineError(f"noisy readout of {self.name}: {w.numel()} weights given, the circuit has {self.n_weights}")
        prefix_states = self._prefix_states(w)
        blocks = fuse([(self._ptm(s, self._values(w, self._grid[:1]))[0] if s.angle else self._ptm(s, None), s.qubits)
                       for s in self.body])
        return self._backward(blocks, prefix_states)

    def _prefix_states(self, w: torch.Tensor) -> dict[int, torch.Tensor]:
        """Each qubit's state after its prefix: (4, 3) with (1, cos x, sin x) of its input for an input qubit,
        (4,) otherwise."""
        values = self._values(w, self._grid)                                             # (3, P)
        states = {}
        for step in self.prefix:
            q = step.qubits[0]
            s = states.get(q, torch.tensor(_GROUND, dtype=self.dtype).expand(3, 4))
            r = self._ptm(step, values)
            states[q] = torch.einsum("...ij,...j->...i", r, s)
        out = {}
        for q, s in states.items():
            out[q] = (self._basis_inverse @ s).T if q in self.qubit_input else s[0]
        return out

    def _backward(self, blocks: list, prefix: dict) -> torch.Tensor:
        """Evolve the m observables backwards through ``blocks`` (reverse order, transposed transfer matrices); a
        qubit joins at its last block (its observable factor) and leaves at its first (contracted with its prefix
        state). Returns C (3^n, m), input 0 slowest."""
        m = len(self.measured)
        first, last = {}, {}
        for b, (_, qs) in enumerate(blocks):
            for q in qs:
                first.setdefault(q, b)
                last[q] = b
        t = torch.ones((m,), dtype=self.dtype)
        axes: list[tuple[str, int]] = []

        def join(q):
            nonlocal t
            t = t.unsqueeze(-1) * self._joins[q].reshape((m,) + (1,) * len(axes) + (4,))
            axes.append(("q", q))

        def leave(q):
            nonlocal t
            ax = 1 + axes.index(("q", q))
            state = prefix.get(q, torch.tensor(_GROUND, dtype=self.dtype))
            t = torch.tensordot(t, state, dims=([ax], [0]))
            axes.remove(("q", q))
            if q in self.qubit_input:            # the contracted axis is replaced by the input's trig index
                axes.append(("x", self.qubit_input[q]))

        for b in range(len(blocks) - 1, -1, -1):
            r, qs = blocks[b]
            for q in qs:
                if ("q", q) not in axes:
                    join(q)
            k = len(qs)
            t = torch.movedim(t, [1 + axes.index(("q", q)) for q in qs], list(range(1, k + 1)))
            axes[:] = [("q", q) for q in qs] + [a for a in axes if a[0] != "q" or a[1] not in qs]
            shape = t.shape
            t = (r.T @ t.reshape(m, 4**k, -1)).reshape(shape)
            for q in qs:
                if first[q] == b:
                    leave(q)
        for q in self.measured:                 # outputs no block touches
            if q not in last:
                join(q)
                leave(q)
        for i in range(self.n_inputs):          # inputs the outputs do not depend on: only the constant term
            if ("x", i) not in axes:
                t = t.unsqueeze(-1) * torch.tensor([1.0, 0.0, 0.0], dtype=self.dtype)
                axes.append(("x", i))
        t = t.permute([0] + [1 + axes.index(("x", i)) for i in range(self.n_inputs)])
        return t.reshape(m, -1).T
