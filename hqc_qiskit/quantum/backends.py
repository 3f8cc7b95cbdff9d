"""Execution backends by name; each turns readout circuits + shots into <Z_q> means and covariances.

Names:
  ``exact``                  exact engine, no shot noise (the training engine)
  ``aer``                    ideal circuits, with shots (output distributions by the exact engine, or
                             by Aer's statevector with ``engine="aer"``; the same distributions, tested)
  ``aer-noise:<model>[@<profile>]``  an Aer noise model of ``noise_models/`` on the circuits transpiled
                             with a profile of ``transpile_profiles/`` (default: the model's own), simulated
                             on the active qubits only (batched density matrices, ``simulate.py``)
  ``fake_<device>``          qiskit-ibm-runtime local mode on a fake device (full-device Aer simulation:
                             exact but slow; ``aer-noise:fake_<device>`` is the fast equivalent)
  ``ibm_<device>``           IBM Quantum hardware through QiskitRuntimeService (saved account)

The two runtime backends live in ``runtime.py`` (Sampler, or Estimator with the runtime's mitigation).

All shot-based backends measure the n output qubits of a circuit together, so the n <Z_q> of a
circuit come from the same shots; ``ZSamples.cov`` is their per-shot covariance.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..errors import ConfigError
from .mitigation import (MitigationOptions, calibrate_confusion, extrapolation_weights, fold_global, inverse_confusion,
                         zne_shot_split)
from .simulate import ReducedSimulator, check_engine, sample_counts, z_signs


@dataclass
class CircuitBatch:
    """Readout circuits of one ansatz: group g has inputs x_g (N_g, n) radians and weights w_g (n_w,)."""

    ansatz: str
    n_qubits: int
    n_layers: int
    groups: list[tuple[np.ndarray, np.ndarray]]

    @property
    def x(self) -> np.ndarray:                  # (K, n)
        return np.concatenate([np.asarray(x, float) for x, _ in self.groups])

    @property
    def w(self) -> np.ndarray:                  # (K, n_w)
        return np.concatenate([np.broadcast_to(np.asarray(w, float).reshape(1, -1), (len(x), np.size(w))) for x, w in self.groups])

    def __len__(self) -> int:
        return sum(len(x) for x, _ in self.groups)

    def fingerprint(self) -> str:
        """Digest of the ansatz, sizes, inputs and weights: equal for batches that run the same circuits."""
        h = hashlib.sha256(f"{self.ansatz}/{self.n_qubits}/{self.n_layers}".encode())
        for x, w in self.groups:
            for a in (x, w):
                a = np.ascontiguousarray(a, dtype=float)
                h.update(str(a.shape).encode() + a.tobytes())
        return h.hexdigest()


@dataclass
class ZSamples:
    """Per circuit: mean <Z_q> (K, n), per-shot covariance (K, n, n), shots (K,) (inf = exact)."""

    mean: np.ndarray
    cov: np.ndarray
    shots: np.ndarray
    qpu_seconds: float = 0.0
    info: dict = field(default_factory=dict)


def stats_from_distribution(probs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean <Z_q> (K, n) and per-shot covariance (K, n, n) of a distribution (K, 2^n) over output bits."""
    s = z_signs(n)
    mean = probs @ s
    # E[Z_q Z_r] as one matrix product with the (2^n, n*n) table of sign products (BLAS; an einsum over
    # k, b, q, r was 10x slower on the 3264 circuits of a force batch)
    second = (probs @ (s[:, :, None] * s[:, None, :]).reshape(len(s), n * n)).reshape(-1, n, n)
    return mean, second - mean[:, :, None] * mean[:, None, :]


def stats_from_counts(counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample means, unbiased per-shot covariance and shots from counts (K, 2^n)."""
    shots = counts.sum(axis=1)
    mean, cov = stats_from_distribution(counts / shots[:, None], n)
    cov = cov * (shots / np.maximum(shots - 1, 1))[:, None, None]
    return mean, cov, shots.astype(float)


def exact_distributions(batch: CircuitBatch) -> np.ndarray:
    """Noiseless output distributions (K, 2^n) from the exact engine (also the prior for shot allocation)."""
    from .exact import output_distribution

    out = []
    for x, w in batch.groups:
        wt = torch.as_tensor(np.asarray(w, float)).reshape(batch.n_layers, batch.n_qubits)
        out.append(output_distribution(batch.ansatz, torch.as_tensor(np.asarray(x, float)), wt).detach().numpy())
    return np.concatenate(out)


class Backend:
    """Base: ``run(batch, shots)`` -> :class:`ZSamples`; ``cost(batch, shots)`` -> what a run would use."""

    name = "base"
    shot_based = True

    def run(self, batch: CircuitBatch, shots: np.ndarray, rng: np.random.Generator | None = None) -> ZSamples:
        raise NotImplementedError

    def cost(self, batch: CircuitBatch, shots: np.ndarray) -> dict:
        shots = np.broadcast_to(np.asarray(shots), (len(batch),))
        return {"backend": self.name, "circuits": len(batch), "shots": int(np.sum(shots)), "qpu_seconds": 0.0}

    def for_allocation(self, allocation: str) -> "Backend":
        """This backend as a shot allocation wants it (``"optimal"``: also within what the backend
        splits itself, e.g. the folds of ZNE); itself unless a subclass has such a choice."""
        return self


class ExactBackend(Backend):
    """The exact engine: shots -> infinity, no noise."""

    name = "exact"
    shot_based = False

    def run(self, batch, shots=None, rng=None):
        mean, cov = stats_from_distribution(exact_distributions(batch), batch.n_qubits)
        return ZSamples(mean, cov, np.full(len(batch), np.inf))


class SimulatorBackend(Backend):
    """Simulation of the transpiled readouts on their active qubits, optional noise model and mitigation."""

    def __init__(self, noise: str | None = None, profile: str | None = None, scale: float = 1.0,
                 mitigation: MitigationOptions | None = None, name: str | None = None,
                 keep_distributions: bool = False, engine: str = "batched"):
        """``keep_distributions``: remember every exact distribution computed (by circuit batch and fold)
        for reuse by this backend and its ``with_mitigation`` siblings. Off by default: a long-lived
        backend that sees a new structure each call (MC, MD) would only accumulate them. ``engine``: noisy
        circuits by the batched density-matrix engine (default) or by Aer (``"aer"``), see ``ReducedSimulator``;
        noiseless ones by the exact engine (default) or by Aer's statevector (``"aer"``)."""
        from .noise import load_noise_spec

        check_engine(engine)
        self.spec = load_noise_spec(noise) if noise else None
        self.profile = profile or (self.spec.profile if self.spec else "ideal")
        self.scale = scale
        self.engine = engine
        self.mitigation = mitigation or MitigationOptions()
        self.name = name or ("aer" if noise is None else f"aer-noise:{noise}@{self.profile}")
        self._simulators: dict = {}
        self._distributions: dict | None = {} if keep_distributions else None   # by (batch fingerprint, fold)

    def with_mitigation(self, mitigation: MitigationOptions) -> "SimulatorBackend":
        """The same noisy device with other mitigation options, sharing this backend's transpiled readouts
        and, if it keeps them, its exact output distributions: a study that runs none, REM, ZNE and
        ZNE + REM on one noise setting then simulates each folded circuit once (the distributions do
        not depend on the mitigation)."""
        other = copy.copy(self)
        other.mitigation = mitigation
        return other

    def cost(self, batch: CircuitBatch, shots: np.ndarray) -> dict:
        """As the base, with every ZNE fold's shots counted."""
        out = super().cost(batch, shots)
        out["shots"] *= max(1, len(self.mitigation.zne_scale_factors))
        return out

    def for_allocation(self, allocation: str) -> "SimulatorBackend":
        """With ZNE and ``"optimal"`` allocation, each circuit's shots are split over its folds in
        proportion to |extrapolation weight| (``zne_shot_split``); the same device and distributions."""
        split = "optimal" if allocation == "optimal" and self.mitigation.zne_scale_factors else "uniform"
        if split == self.mitigation.zne_shots:
            return self
        return self.with_mitigation(replace(self.mitigation, zne_shots=split))

    def simulator(self, batch: CircuitBatch, scale_factor: int = 1) -> ReducedSimulator:
        """The readout's reduced simulator, its circuit folded ``scale_factor`` times for ZNE (built once each)."""
        from .noise import reduced_noise
        from .transpile import transpile_readout

        key = (batch.ansatz, batch.n_qubits, batch.n_layers, scale_factor)
        if key not in self._simulators:
            if scale_factor != 1:
                plain = self.simulator(batch)
                self._simulators[key] = plain.with_circuit(fold_global(plain.tr.reduced, scale_factor))
            else:
                tr = transpile_readout(batch.ansatz, self.profile, batch.n_qubits, batch.n_layers)
                noise = reduced_noise(self.spec, tr, self.scale) if self.spec else None
                self._simulators[key] = ReducedSimulator(tr, noise, engine=self.engine)
        return self._simulators[key]

    def distributions(self, batch: CircuitBatch, scale_factor: int = 1) -> np.ndarray:
        """Exact measured distributions (K, 2^n) (noise and readout error included), folded by ``scale_factor``."""
        if self._distributions is None:
            return self._simulate(batch, scale_factor)
        key = (batch.fingerprint(), scale_factor)
        if key not in self._distributions:
            self._distributions[key] = self._simulate(batch, scale_factor)
        return self._distributions[key].copy()

    def _simulate(self, batch: CircuitBatch, scale_factor: int) -> np.ndarray:
        if self.spec is None and self.engine == "batched":
            # noiseless: every transpiled (and folded) readout has the logical circuit's output distribution,
            # which the exact engine gives for all circuits in one batched product (0.13x the time of Aer's
            # statevector, one experiment per circuit, for a force batch: benchmarks/shot_md_step.py; equality
            # is tested)
            return exact_distributions(batch)
        sim = self.simulator(batch, scale_factor)
        params = sim.tr.parameter_values(batch.x, batch.w, sim.tr.reduced)
        return sim.distributions(params)

    def _calibration(self, batch: CircuitBatch, rng: np.random.Generator) -> list[np.ndarray]:
        """Per-output confusion [prepared, measured] from |0..0> / |1..1> preparations, measured with the
        backend's own noise (``rem_shots`` shots each)."""
        from qiskit import QuantumCircuit

        sim = self.simulator(batch)
        counts = []
        for flip in (False, True):
            prep = QuantumCircuit(sim.tr.reduced.num_qubits)
            if flip:
                for q in sim.tr.reduced_outputs:
                    prep.x(q)
            probs = sim.with_circuit(prep).distributions(np.zeros((1, 0)))
            counts.append(sample_counts(probs, self.mitigation.rem_shots, rng)[0])
        return calibrate_confusion(counts[0], counts[1], batch.n_qubits)

    def run(self, batch, shots, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        n = batch.n_qubits
        shots = np.broadcast_to(np.asarray(shots, dtype=float), (len(batch),))
        exact = bool(np.all(np.isinf(shots)))
        factors = self.mitigation.zne_scale_factors or (1,)
        weights = extrapolation_weights(factors, self.mitigation.zne_method) if len(factors) > 1 else np.ones(1)
        inverse = contrast = None
        if self.mitigation.rem:
            confusion = self._calibration(batch, rng)
            inverse = inverse_confusion(confusion)
            # REM maps each raw <Z_q> affinely with slope 1 / (1 - p(1|0) - p(0|1)): covariance scales by it
            contrast = np.array([1.0 - c[0, 1] - c[1, 0] for c in confusion])
        per_fold = zne_shot_split(shots, weights, self.mitigation.zne_shots)   # (folds, circuits); one fold: shots
        mean = np.zeros((len(batch), n))
        cov = np.zeros((len(batch), n, n))   # per shot of the circuit's nominal ``shots``: cov / shots = variance
        for factor, gamma, fold_shots in zip(factors, weights, per_fold):
            probs = self.distributions(batch, factor)
            if exact:
                freq, c = probs, stats_from_distribution(probs, n)[1]
            else:
                counts = sample_counts(probs, fold_shots, rng)
                _, c, _ = stats_from_counts(counts, n)
                freq = counts / counts.sum(axis=1, keepdims=True)
                c = c * (shots / fold_shots)[:, None, None]
            if inverse is not None:
                freq = freq @ inverse.T
                c = c / contrast[None, :, None] / contrast[None, None, :]
            mean += gamma * (freq @ z_signs(n))
            cov += gamma**2 * c
        info = {"mitigation": self.mitigation.label, "executed_shots": float(per_fold.sum())}
        return ZSamples(mean, cov, shots.copy(), info=info)


def make_backend(name: str, profile: str | None = None, scale: float = 1.0, mitigation: str | None = None,
                 runtime: RuntimeOptions | None = None, engine: str = "batched") -> Backend:
    """Backend by name (see module docstring). ``engine``: how ``aer`` and ``aer-noise:`` backends compute output
    distributions, ``"batched"`` (default: the exact engine without noise, the batched density-matrix engine with
    noise) or ``"aer"`` (Aer's statevector / density-matrix methods)."""
    options = MitigationOptions.parse(mitigation)
    if name == "exact":
        return ExactBackend()
    if name == "aer":
        return SimulatorBackend(None, profile, scale, options, engine=engine)
    if name.startswith("aer-noise:"):
        model, _, at_profile = name.removeprefix("aer-noise:").partition("@")
        return SimulatorBackend(model, at_profile or profile, scale, options, engine=engine)
    if name.startswith("fake_") or name.startswith("ibm_"):
        # on runtime backends the same --mitigation is done by the runtime (Estimator resilience options)
        return RuntimeBackend(name, profile, (runtime or RuntimeOptions()).with_mitigation(options))
    raise ConfigError(f"unknown backend {name!r}; use exact, aer, aer-noise:<model>[@<profile>], fake_<device> or "
                      "ibm_<device> (see `hqc-qiskit backends`)")


from .runtime import RuntimeBackend, RuntimeOptions  # noqa: E402 - defined there, re-exported here (import cycle)
