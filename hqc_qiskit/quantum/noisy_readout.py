"""Noisy expectation values of a readout as an exact, differentiable function of its inputs.

Why hand-written (project science): on a noisy device the readout is a fixed noisy channel applied to
the embedded product state. Input q enters only through the single-qubit operations on its qubit before
that qubit's first two-qubit gate (the RY(x_q) embedding, transpiled; noise channels there do not depend
on x), so qubit q's state is affine in (1, cos x_q, sin x_q), and every noisy <Z_p> (gate, idle and readout
error included) is a multilinear function of the n vectors b_q = (1, cos x_q, sin x_q):

    <Z_p>(x) = sum_{j in {0,1,2}^n} C[j, p] prod_q b_q[j_q].

The 3^n x n coefficients C follow exactly from the noisy simulation at the 3^n inputs of the grid
{0, 2pi/3, 4pi/3}^n (the 3 x 3 matrix of (1, cos a, sin a) at those angles is invertible): one batch of
circuits that share all weights, which is what the batched density-matrix engine is for. After that,
<Z>(x) costs a few hundred kFLOP per input row, is twice differentiable, and gives what the backend's
expectation values (no shots) give, without simulating again: the device's noise, in the training loop.

Holds for unfolded circuits without mitigation (what the device returns). Global folding for ZNE repeats
the embedding, which raises the degree in x; REM calibrates from sampled shots. Both are refused.
Construction checks the claim: the coefficients must reproduce the simulation at random inputs.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, EngineError

#: interpolation angles per input (rad); any three distinct angles mod 2pi would do
GRID_ANGLES = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
#: largest |difference| of <Z> allowed between the coefficients and a direct simulation at random inputs
CHECK_TOLERANCE = 1e-9
CHECK_POINTS = 4
#: the state-dict entries (suffixes) of a noisy readout that are simulated from its weights, not trained:
#: dropped when a model is initialised from a run with other noise, rebuilt after loading
STATE_SUFFIXES = (".circuit.coefficients", ".circuit.built")


def trig_basis(x):
    """(1, cos x, sin x) along a new last axis: (..., 3); numpy or torch."""
    if isinstance(x, torch.Tensor):
        return torch.stack([torch.ones_like(x), torch.cos(x), torch.sin(x)], dim=-1)
    x = np.asarray(x, dtype=float)
    return np.stack([np.ones_like(x), np.cos(x), np.sin(x)], axis=-1)


def grid_inputs(n_inputs: int) -> np.ndarray:
    """The 3^n grid inputs (3^n, n) rad, input 0 slowest (row index = sum_q i_q 3^(n-1-q))."""
    idx = np.indices((3,) * n_inputs).reshape(n_inputs, -1).T
    return GRID_ANGLES[idx]


def coefficients_from_grid(values: np.ndarray, n_inputs: int) -> np.ndarray:
    """C (3^n, m) from a function's values (3^n, m) on :func:`grid_inputs` (exact for multilinear functions)."""
    inverse = np.linalg.inv(trig_basis(GRID_ANGLES))          # rows: angles, columns: basis functions
    t = values.reshape((3,) * n_inputs + (-1,))
    for axis in range(n_inputs):
        t = np.moveaxis(np.tensordot(inverse, t, axes=([1], [axis])), 0, axis)
    return t.reshape(3**n_inputs, -1)


def _product_features(b: torch.Tensor) -> torch.Tensor:
    """Kronecker product of the rows' basis vectors b (N, k, 3) -> (N, 3^k), first input slowest."""
    feat = b[:, 0, :]
    for q in range(1, b.shape[1]):
        feat = (feat[:, :, None] * b[:, q, None, :]).reshape(len(b), -1)
    return feat


def contract(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_j C[j, p] prod_q b_q[j_q] for inputs x (N, n) rad and C (3^n, m) -> (N, m); twice differentiable.

    The inputs are split in two halves with product features A (N, 3^h) and B (N, 3^(n-h)); then
    out = sum_b B[:, b] (A @ C)[:, b, :]: one matrix product and one batched reduction, with intermediates of
    N x 3^(n-h) x m (a first version contracted one input at a time: intermediates of N x 3^(n-1) x m, 34x the
    exact engine's time; benchmarks/noisy_readout.py)."""
    n = x.shape[1]
    h = n // 2
    b = trig_basis(x)                                                    # (N, n, 3)
    if h == 0:
        return b[:, 0, :] @ coefficients
    first, second = _product_features(b[:, :h]), _product_features(b[:, h:])
    t = (first @ coefficients.reshape(3**h, -1)).reshape(len(x), 3 ** (n - h), -1)     # (N, 3^(n-h), m)
    return torch.bmm(second[:, None, :], t)[:, 0, :]


def noisy_coefficients(backend, ansatz: str, n_qubits: int, n_layers: int, weights: np.ndarray,
                       progress: Callable[[int, int], None] | None = None, chunk: int = 729,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """C (3^n, n) of the noisy <Z_q> of one readout (weights (n_layers, n_qubits) rad) on ``backend`` (an
    ``aer-noise:`` :class:`~.backends.SimulatorBackend` without mitigation), from 3^n noisy simulations.

    ``progress(done, total)`` is called after each chunk of circuits. Raises EngineError if the coefficients
    do not reproduce a direct simulation at ``CHECK_POINTS`` random inputs to ``CHECK_TOLERANCE``."""
    from .backends import CircuitBatch, SimulatorBackend
    from .simulate import z_signs

    if not isinstance(backend, SimulatorBackend) or backend.spec is None:
        raise ConfigError(f"noisy readouts need an 'aer-noise:<model>[@<profile>]' backend, not {backend.name!r}")
    if backend.mitigation.rem or backend.mitigation.zne_scale_factors:
        raise ConfigError(f"noisy readouts model the raw device ({backend.name}); mitigation "
                          f"'{backend.mitigation.label}' cannot be folded into them (ZNE repeats the embedding, "
                          "REM calibrates from sampled shots)")
    w = np.asarray(weights, dtype=float).reshape(-1)
    signs = z_signs(n_qubits)

    def expectations(x: np.ndarray) -> np.ndarray:
        return backend.distributions(CircuitBatch(ansatz, n_qubits, n_layers, [(x, w)])) @ signs

    grid = grid_inputs(n_qubits)
    values = []
    for start in range(0, len(grid), chunk):
        values.append(expectations(grid[start:start + chunk]))
        if progress is not None:
            progress(min(start + chunk, len(grid)), len(grid))
    coefficients = coefficients_from_grid(np.concatenate(values), n_qubits)
    rng = rng if rng is not None else np.random.default_rng(0)
    probe = rng.uniform(-math.pi, math.pi, size=(CHECK_POINTS, n_qubits))
    direct = expectations(probe)
    interpolated = contract(torch.as_tensor(coefficients), torch.as_tensor(probe)).numpy()
    worst = float(np.max(np.abs(direct - interpolated)))
    if not worst <= CHECK_TOLERANCE:
        raise EngineError(f"noisy readout of {ansatz!r} on {backend.name}: the expectation values are not "
                          f"multilinear in (1, cos x, sin x) of the inputs (off by {worst:.2e} at random inputs); "
                          "does the transpiled circuit use an input angle in more than one gate?")
    return coefficients


class NoisyCircuit(nn.Module):
    """A readout circuit as the noisy device runs it: (B, n_qubits) angles -> (B, n_qubits) noisy <Z>.

    The circuit weights (n_layers, n_qubits) are a frozen buffer (the coefficients hold them; changing them
    means simulating again), the coefficients C (3^n, n) a buffer built by :meth:`build` from the weights
    and the backend ``noise_backend`` at ``noise_scale``. Saved and loaded with the model like any weights."""

    supports_double_backward = True

    def __init__(self, name: str, n_qubits: int = 8, n_layers: int = 3, initial_weights=None,
                 noise_backend: str | None = None, noise_scale: float = 1.0):
        super().__init__()
        if not noise_backend:
            raise ConfigError("readout engine 'noisy' needs model.readout.noise_backend (aer-noise:<model>[@<profile>])")
        self.name, self.n_qubits, self.n_layers = name, n_qubits, n_layers
        self.noise_backend, self.noise_scale = noise_backend, noise_scale
        if initial_weights is None:
            initial_weights = torch.rand(n_layers, n_qubits) * 2 * math.pi
        dtype = torch.get_default_dtype()
        self.register_buffer("weight", torch.as_tensor(initial_weights, dtype=dtype).reshape(n_layers, n_qubits).clone())
        self.register_buffer("coefficients", torch.zeros(3**n_qubits, n_qubits, dtype=dtype))
        self.register_buffer("built", torch.zeros((), dtype=torch.bool))

    def backend(self):
        from .backends import make_backend

        return make_backend(self.noise_backend, scale=self.noise_scale)

    def build(self, backend=None, progress: Callable[[int, int], None] | None = None) -> None:
        """Simulate the 3^n grid circuits with the current weights and store the coefficients."""
        c = noisy_coefficients(backend or self.backend(), self.name, self.n_qubits, self.n_layers,
                               self.weight.detach().double().cpu().numpy(), progress)
        self.coefficients.copy_(torch.as_tensor(c))
        self.built.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.built):
            raise EngineError(f"noisy readout ({self.noise_backend}) has no coefficients yet: initialise the model from "
                              "a trained run (train.init_from, or `hqc-qiskit noise-aware`), which simulates them")
        return contract(self.coefficients.to(x.dtype), x)


def build_noisy_readouts(model: nn.Module, progress: bool = False, log: Callable[[str], None] | None = None) -> int:
    """Simulate the coefficients of every noisy readout circuit of ``model`` that has none yet (one backend
    shared by all, so the transpiled readout is built once), with a progress bar per readout on a terminal
    when ``progress``; where no bar shows, ``log`` (if given) gets one line per readout before and after (the
    simulation takes minutes per readout, and a log would otherwise show nothing). Returns how many were built."""
    import time

    from ..progress import progress_bar

    todo = [m for m in model.modules() if isinstance(m, NoisyCircuit) and not bool(m.built)]
    backend = todo[0].backend() if todo else None
    for i, m in enumerate(todo):
        what = f"noisy readout {i + 1}/{len(todo)} ({m.noise_backend} x{m.noise_scale:g})"
        with progress_bar(what, 3**m.n_qubits, progress) as bar:
            start = time.time()
            if bar is None and log is not None:
                log(f"{what}: simulating {3**m.n_qubits} circuits")
            m.build(backend, bar)
            if bar is None and log is not None:
                log(f"{what}: done in {time.time() - start:.0f} s")
    return len(todo)
