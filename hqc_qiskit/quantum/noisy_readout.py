"""Noisy expectation values of a readout as an exact, differentiable function of its inputs.

Why hand-written (project science): on a noisy device the readout is a fixed noisy channel applied to
the embedded product state. Input q enters only through the single-qubit operations on its qubit before
that qubit's first two-qubit gate (the RY(x_q) embedding, transpiled; noise channels there do not depend
on x), so qubit q's state is affine in (1, cos x_q, sin x_q), and every noisy <Z_p> (gate, idle and readout
error included) is a multilinear function of the n vectors b_q = (1, cos x_q, sin x_q):

    <Z_p>(x) = sum_{j in {0,1,2}^n} C[j, p] prod_q b_q[j_q].

The 3^n x n coefficients C follow exactly from the noisy simulation at the 3^n inputs of the grid
{0, 2pi/3, 4pi/3}^n (the 3 x 3 matrix of (1, cos a, sin a) at those angles is invertible): one batch of
circuits that share all weights (:func:`grid_coefficients`, the reference), or, the same numbers from n
circuits' worth of work, from the n observables evolved backwards through the noisy circuit
(:mod:`.heisenberg`, the default; 0.05 s against 23 s for an 8-qubit readout), which is also differentiable
in the circuit weights, so that they can be trained through the noise as well. After that, <Z>(x) costs a few hundred kFLOP per input row, is twice differentiable, and gives what the backend's
expectation values (no shots) give, without simulating again: the device's noise, in the training loop.

Holds for unfolded circuits without mitigation (what the device returns). Global folding for ZNE repeats
the embedding, which raises the degree in x; REM calibrates from sampled shots. Both are refused.
Construction checks the claim: the coefficients must reproduce the simulation at random inputs.
"""

from __future__ import annotations

import functools
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


def readout_simulator(backend, ansatz: str, n_qubits: int, n_layers: int):
    """The :class:`~.simulate.ReducedSimulator` of one readout on ``backend``, which must be an ``aer-noise:``
    :class:`~.backends.SimulatorBackend` without mitigation (ConfigError otherwise)."""
    from .backends import CircuitBatch, SimulatorBackend

    if not isinstance(backend, SimulatorBackend) or backend.spec is None:
        raise ConfigError(f"noisy readouts need an 'aer-noise:<model>[@<profile>]' backend, not {backend.name!r}")
    if backend.mitigation.rem or backend.mitigation.zne_scale_factors:
        raise ConfigError(f"noisy readouts model the raw device ({backend.name}); mitigation "
                          f"'{backend.mitigation.label}' cannot be folded into them (ZNE repeats the embedding, "
                          "REM calibrates from sampled shots)")
    return backend.simulator(CircuitBatch(ansatz, n_qubits, n_layers, []))


def _direct_expectations(backend, ansatz: str, n_qubits: int, n_layers: int, w: np.ndarray):
    """x (K, n) -> the backend's noisy <Z> (K, n) for flat weights ``w``, one density-matrix simulation per row."""
    from .backends import CircuitBatch
    from .simulate import z_signs

    signs = z_signs(n_qubits)
    return lambda x: backend.distributions(CircuitBatch(ansatz, n_qubits, n_layers, [(x, w)])) @ signs


def grid_coefficients(backend, ansatz: str, n_qubits: int, n_layers: int, weights: np.ndarray,
                      progress: Callable[[int, int], None] | None = None, chunk: int = 729) -> np.ndarray:
    """C (3^n, n) from the 3^n noisy simulations at :func:`grid_inputs` (the first construction, kept as the
    reference the Heisenberg one is tested and benchmarked against). ``progress(done, total)`` after each chunk."""
    readout_simulator(backend, ansatz, n_qubits, n_layers)
    expectations = _direct_expectations(backend, ansatz, n_qubits, n_layers, np.asarray(weights, float).reshape(-1))
    grid = grid_inputs(n_qubits)
    values = []
    for start in range(0, len(grid), chunk):
        values.append(expectations(grid[start:start + chunk]))
        if progress is not None:
            progress(min(start + chunk, len(grid)), len(grid))
    return coefficients_from_grid(np.concatenate(values), n_qubits)


@functools.lru_cache(maxsize=16)
def heisenberg_engine(noise_backend: str, noise_scale: float, ansatz: str, n_qubits: int, n_layers: int):
    """The :class:`~.heisenberg.HeisenbergReadout` of one readout on ``noise_backend`` at ``noise_scale`` (compiled
    once per process: transpiling and converting the noise channels take about a second)."""
    from .backends import make_backend
    from .heisenberg import HeisenbergReadout

    return HeisenbergReadout(readout_simulator(make_backend(noise_backend, scale=noise_scale), ansatz, n_qubits, n_layers))


def noisy_coefficients(backend, ansatz: str, n_qubits: int, n_layers: int, weights: np.ndarray,
                       progress: Callable[[int, int], None] | None = None, method: str = "heisenberg",
                       rng: np.random.Generator | None = None, engine=None) -> np.ndarray:
    """C (3^n, n) of the noisy <Z_q> of one readout (weights (n_layers, n_qubits) rad) on ``backend`` (an
    ``aer-noise:`` :class:`~.backends.SimulatorBackend` without mitigation).

    ``method``: ``"heisenberg"`` (default; n observables evolved backwards, ``quantum.heisenberg``) or ``"grid"``
    (3^n circuits forwards, :func:`grid_coefficients`): the same numbers (tested), the first hundreds of times
    faster. ``progress(done, total)`` is called as circuits are done. Raises EngineError if the coefficients do
    not reproduce a direct simulation at ``CHECK_POINTS`` random inputs to ``CHECK_TOLERANCE``. ``engine``: the
    readout's :class:`~.heisenberg.HeisenbergReadout` on this backend if one is at hand (:func:`heisenberg_engine`)."""
    from .heisenberg import HeisenbergReadout

    w = np.asarray(weights, dtype=float).reshape(-1)
    if method == "grid":
        coefficients = grid_coefficients(backend, ansatz, n_qubits, n_layers, w, progress)
    elif method == "heisenberg":
        engine = engine or HeisenbergReadout(readout_simulator(backend, ansatz, n_qubits, n_layers))
        with torch.no_grad():
            coefficients = engine.coefficients(w).numpy()
        if progress is not None:
            progress(3**n_qubits, 3**n_qubits)
    else:
        raise ConfigError(f"unknown coefficient method {method!r}; use 'heisenberg' or 'grid'")
    check_coefficients(coefficients, _direct_expectations(backend, ansatz, n_qubits, n_layers, w),
                       f"noisy readout of {ansatz!r} on {backend.name}", rng)
    return coefficients


def check_coefficients(coefficients: np.ndarray, expectations: Callable, what: str,
                       rng: np.random.Generator | None = None) -> None:
    """EngineError unless ``coefficients`` (3^n, n) reproduce ``expectations(x)`` at ``CHECK_POINTS`` random inputs."""
    rng = rng if rng is not None else np.random.default_rng(0)
    probe = rng.uniform(-math.pi, math.pi, size=(CHECK_POINTS, int(round(math.log(len(coefficients), 3)))))
    direct = expectations(probe)
    interpolated = contract(torch.as_tensor(coefficients), torch.as_tensor(probe)).numpy()
    worst = float(np.max(np.abs(direct - interpolated)))
    if not worst <= CHECK_TOLERANCE:
        raise EngineError(f"{what}: the expectation values are not multilinear in (1, cos x, sin x) of the inputs "
                          f"(off by {worst:.2e} at random inputs); does the transpiled circuit use an input angle in "
                          "more than one gate?")


class NoisyCircuit(nn.Module):
    """A readout circuit as the noisy device runs it: (B, n_qubits) angles -> (B, n_qubits) noisy <Z>.

    The coefficients C (3^n, n) are a buffer built by :meth:`build` from the circuit weights
    (n_layers, n_qubits) and the backend ``noise_backend`` at ``noise_scale``. With ``train_weights`` False
    the weights are a frozen buffer; with True they are a parameter and C is recomputed from them
    (differentiably, :mod:`.heisenberg`) at every training forward, and in evaluation whenever they differ
    from the weights C was built from (an optimiser step, an EMA copy). Saved and loaded with the model like
    any weights (the same state-dict keys either way)."""

    supports_double_backward = True

    def __init__(self, name: str, n_qubits: int = 8, n_layers: int = 3, initial_weights=None,
                 noise_backend: str | None = None, noise_scale: float = 1.0, train_weights: bool = False):
        super().__init__()
        if not noise_backend:
            raise ConfigError("readout engine 'noisy' needs model.readout.noise_backend (aer-noise:<model>[@<profile>])")
        self.name, self.n_qubits, self.n_layers = name, n_qubits, n_layers
        self.noise_backend, self.noise_scale, self.train_weights = noise_backend, noise_scale, train_weights
        if initial_weights is None:
            initial_weights = torch.rand(n_layers, n_qubits) * 2 * math.pi
        dtype = torch.get_default_dtype()
        weight = torch.as_tensor(initial_weights, dtype=dtype).reshape(n_layers, n_qubits).clone()
        if train_weights:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)
        self.register_buffer("coefficients", torch.zeros(3**n_qubits, n_qubits, dtype=dtype))
        self.register_buffer("built", torch.zeros((), dtype=torch.bool))
        # the weights the coefficients were built from (not saved: after loading, the first use rebuilds; a
        # buffer, so that an EMA copy, which copies buffers and averages parameters, sees the pair it was given)
        self.register_buffer("built_weight", torch.full_like(weight, math.nan), persistent=False)

    def backend(self):
        from .backends import make_backend

        return make_backend(self.noise_backend, scale=self.noise_scale)

    def engine(self):
        """This readout's cached :class:`~.heisenberg.HeisenbergReadout` (:func:`heisenberg_engine`)."""
        return heisenberg_engine(self.noise_backend, float(self.noise_scale), self.name, self.n_qubits, self.n_layers)

    def build(self, backend=None, progress: Callable[[int, int], None] | None = None) -> None:
        """Compute the coefficients for the current weights (checked against direct simulations) and store them.
        ``backend``: another backend than the readout's own (its engine is then built afresh)."""
        engine = None if backend is not None else self.engine()
        c = noisy_coefficients(backend or self.backend(), self.name, self.n_qubits, self.n_layers,
                               self.weight.detach().double().cpu().numpy(), progress, engine=engine)
        self._store(torch.as_tensor(c))

    def _store(self, c: torch.Tensor) -> None:
        with torch.no_grad():
            self.coefficients.copy_(c)
            self.built_weight.copy_(self.weight)
            self.built.fill_(True)

    def _coefficients_of_weights(self) -> torch.Tensor:
        """C from the current weights, differentiable in them (computed in float64 on the CPU)."""
        return self.engine().coefficients(self.weight.to("cpu", torch.float64)).to(self.coefficients.device, self.coefficients.dtype)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """Trainable weights: the saved coefficients are those of the saved weights (a training forward leaves the
        coefficients of the weights before the optimiser step; an EMA copy holds the live model's)."""
        if self.train_weights and not torch.equal(self.weight, self.built_weight):
            with torch.no_grad():
                self._store(self._coefficients_of_weights())
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.train_weights:
            if self.training and torch.is_grad_enabled() and self.weight.requires_grad:
                c = self._coefficients_of_weights()
                self._store(c.detach())
                return contract(c.to(x.dtype), x)
            if not torch.equal(self.weight, self.built_weight):
                with torch.no_grad():
                    self._store(self._coefficients_of_weights())
        elif not bool(self.built):
            raise EngineError(f"noisy readout ({self.noise_backend}) has no coefficients yet: initialise the model from "
                              "a trained run (train.init_from, or `hqc-qiskit noise-aware`), which simulates them")
        return contract(self.coefficients.to(x.dtype), x)


LARGE_TRAINABLE_QUBITS = 10   # above this, a trainable noisy readout costs seconds and GiB per training step


def check_trainable_noisy_readouts(model: nn.Module, log: Callable[[str], None] | None = None,
                                   available_bytes: int | None = None) -> None:
    """Before training circuit weights through the noise: ConfigError when the backward passes of all of
    ``model``'s trainable noisy readouts together (:meth:`.heisenberg.HeisenbergReadout.gradient_bytes`, kept
    at once until the loss's backward) would need more than ``available_bytes`` (default: the memory available
    now); ``log`` gets a line per readout whose transpiled circuit touches more than LARGE_TRAINABLE_QUBITS
    qubits (a routed whole-chip profile: 12 qubits for the 8-qubit readout on Eagle, ~80 s and ~12 GiB per
    readout and step on one CPU thread, against 0.2 s on the compact profile's 8)."""
    import psutil

    trainable = [m for m in model.modules() if isinstance(m, NoisyCircuit) and m.train_weights]
    if not trainable:
        return
    engines = [m.engine() for m in trainable]
    need = sum(e.gradient_bytes() for e in engines)
    available = psutil.virtual_memory().available if available_bytes is None else available_bytes
    widest_at = max(range(len(engines)), key=lambda i: engines[i].n_qubits)
    widest, widest_backend = engines[widest_at], trainable[widest_at].noise_backend
    if need > available:
        raise ConfigError(f"training the circuit weights of {len(engines)} noisy readout(s) on {widest_backend} "
                          f"needs about {need / 2**30:.1f} GiB for the weight gradients ({widest.name}: "
                          f"{widest.n_qubits} qubits touched), {available / 2**30:.1f} GiB available; use "
                          f"{_compact_hint(widest_backend)}, or keep the circuit weights fixed (no --train-circuits / "
                          "model.readout.train_circuit_weights: false)")
    if log is not None:
        for m, e in zip(trainable, engines):
            if e.n_qubits > LARGE_TRAINABLE_QUBITS:
                log(f"trainable noisy readout {e.name}: {e.n_qubits} qubits touched, about "
                    f"{e.gradient_bytes() / 2**30:.1f} GiB and tens of seconds per training step for its weight "
                    f"gradient; {_compact_hint(m.noise_backend)} is hundreds of times cheaper")


def _compact_hint(noise_backend: str) -> str:
    """How to run ``noise_backend``'s device on a compact region (for the messages about wide readouts): its shipped
    compact profile, or how to make one."""
    from .backends import make_backend
    from .profiles import compact_profiles_of, load_profile

    backend = make_backend(noise_backend)
    target = load_profile(backend.profile).target
    names = compact_profiles_of(target)
    if names:
        model = noise_backend.removeprefix("aer-noise:").partition("@")[0]
        return f"a compact profile (aer-noise:{model}@{names[0]}), whose circuits touch only the readout's own qubits"
    return (f"a compact profile of {target} (none ships: copy its transpile profile {backend.profile!r} and set "
            "'region: compact'), whose circuits touch only the readout's own qubits")


def build_noisy_readouts(model: nn.Module, progress: bool = False, log: Callable[[str], None] | None = None) -> int:
    """Compute the coefficients of every noisy readout circuit of ``model`` that has none yet (each from the
    readout's cached :func:`heisenberg_engine`, which trainable readouts and the memory check use too), with a
    progress bar per readout on a terminal when ``progress``; where no bar shows, ``log`` (if given) gets one
    line per readout before and after (a whole-chip profile takes tens of seconds per readout, and a log would
    otherwise show nothing). Returns how many were built."""
    import time

    from ..progress import progress_bar

    todo = [m for m in model.modules() if isinstance(m, NoisyCircuit) and not bool(m.built)]
    for i, m in enumerate(todo):
        what = f"noisy readout {i + 1}/{len(todo)} ({m.noise_backend} x{m.noise_scale:g})"
        with progress_bar(what, 3**m.n_qubits, progress) as bar:
            start = time.time()
            if bar is None and log is not None:
                log(f"{what}: computing its {3**m.n_qubits} x {m.n_qubits} coefficients")
            m.build(progress=bar)
            if bar is None and log is not None:
                log(f"{what}: done in {time.time() - start:.1f} s")
    return len(todo)
