"""Execution backends by name; each turns readout circuits + shots into <Z_q> means and covariances.

Names:
  ``exact``                  exact engine, no shot noise (the training engine)
  ``aer``                    Aer, ideal, with shots
  ``aer-noise:<model>[@<profile>]``  Aer with a noise model of ``noise_models/`` on the circuits transpiled
                             with a profile of ``transpile_profiles/`` (default: the model's own), simulated
                             on the active qubits only
  ``fake_<device>``          qiskit-ibm-runtime local mode on a fake device (full-device Aer simulation:
                             exact but slow; ``aer-noise:fake_<device>`` is the fast equivalent)
  ``ibm_<device>``           IBM Quantum hardware through QiskitRuntimeService (saved account)

All shot-based backends measure the n output qubits of a circuit together, so the n <Z_q> of a
circuit come from the same shots; ``ZSamples.cov`` is their per-shot covariance.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, EngineError, HQCError
from .mitigation import MitigationOptions, calibrate_confusion, extrapolation_weights, fold_global, inverse_confusion
from .simulate import ReducedSimulator, sample_counts, z_signs


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
    second = np.einsum("kb,bq,br->kqr", probs, s, s)
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


class ExactBackend(Backend):
    """The exact engine: shots -> infinity, no noise."""

    name = "exact"
    shot_based = False

    def run(self, batch, shots=None, rng=None):
        mean, cov = stats_from_distribution(exact_distributions(batch), batch.n_qubits)
        return ZSamples(mean, cov, np.full(len(batch), np.inf))


class SimulatorBackend(Backend):
    """Aer on the active qubits of the transpiled readouts, optional noise model and mitigation."""

    def __init__(self, noise: str | None = None, profile: str | None = None, scale: float = 1.0,
                 mitigation: MitigationOptions | None = None, name: str | None = None):
        from .noise import load_noise_spec

        self.spec = load_noise_spec(noise) if noise else None
        self.profile = profile or (self.spec.profile if self.spec else "ideal")
        self.scale = scale
        self.mitigation = mitigation or MitigationOptions()
        self.name = name or ("aer" if noise is None else f"aer-noise:{noise}@{self.profile}")
        self._simulators: dict = {}

    def simulator(self, batch: CircuitBatch) -> ReducedSimulator:
        from .noise import reduced_noise
        from .transpile import transpile_readout

        key = (batch.ansatz, batch.n_qubits, batch.n_layers)
        if key not in self._simulators:
            tr = transpile_readout(batch.ansatz, self.profile, batch.n_qubits, batch.n_layers)
            self._simulators[key] = ReducedSimulator(tr, reduced_noise(self.spec, tr, self.scale) if self.spec else None)
        return self._simulators[key]

    def distributions(self, batch: CircuitBatch, scale_factor: int = 1) -> np.ndarray:
        """Exact measured distributions (K, 2^n) (noise and readout error included), folded by ``scale_factor``."""
        sim = self.simulator(batch)
        if scale_factor != 1:
            sim = sim.with_circuit(fold_global(sim.tr.reduced, scale_factor))
        params = sim.tr.parameter_values(batch.x, batch.w, sim.tr.reduced)
        return sim.distributions(params, sim.circuit)

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
        mean = np.zeros((len(batch), n))
        cov = np.zeros((len(batch), n, n))
        for factor, gamma in zip(factors, weights):
            probs = self.distributions(batch, factor)
            if exact:
                freq, c = probs, stats_from_distribution(probs, n)[1]
            else:
                counts = sample_counts(probs, shots, rng)
                _, c, _ = stats_from_counts(counts, n)
                freq = counts / counts.sum(axis=1, keepdims=True)
            if inverse is not None:
                freq = freq @ inverse.T
                c = c / contrast[None, :, None] / contrast[None, None, :]
            mean += gamma * (freq @ z_signs(n))
            cov += gamma**2 * c
        return ZSamples(mean, cov, shots.copy(), info={"mitigation": self.mitigation.label})


@dataclass
class RuntimeOptions:
    """IBM Runtime sampler options (the runtime's own error suppression) and job limits."""

    dynamical_decoupling: bool = False
    twirling: bool = False
    max_qpu_seconds: float | None = None     # hard cap: refuse to submit above the estimate
    max_circuits_per_job: int = 2000         # parameter sets per submitted job
    retries: int = 4                         # per job, with exponential backoff
    backoff_seconds: float = 2.0
    journal: str | None = None               # folder keeping every finished job's counts (resume)


def account_help(device: str) -> str:
    return (
        f"no IBM Quantum account found for backend {device!r}. Save one once with\n"
        "  python -c \"from qiskit_ibm_runtime import QiskitRuntimeService; "
        "QiskitRuntimeService.save_account(channel='ibm_quantum_platform', token='<API key>', instance='<CRN>')\"\n"
        "(or set QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE). The token is read by qiskit-ibm-runtime only; "
        f"hqc-qiskit never stores it. To run offline on the device's noise snapshot use --backend fake_{device.removeprefix('ibm_')} "
        f"(runtime local mode) or aer-noise:fake_{device.removeprefix('ibm_')} (fast)."
    )


class RuntimeBackend(Backend):
    """qiskit-ibm-runtime SamplerV2 in batch mode: a fake device (local mode) or IBM hardware.

    Circuits are the full-device ISA circuits of the profile, measured on the output qubits; all
    parameter sets with the same shot count go out as one PUB (parameter array)."""

    def __init__(self, name: str, profile: str | None = None, options: RuntimeOptions | None = None, service=None):
        self.name = name
        self.options = options or RuntimeOptions()
        self.is_hardware = name.startswith("ibm_")
        self._service = service
        self._backend = None
        self._measured: dict = {}
        device = name if not self.is_hardware else "fake_" + name.removeprefix("ibm_")
        self.profile = profile or _default_profile(device)

    @property
    def device(self):
        """The runtime backend (loads the saved IBM account for ``ibm_*``; fails with instructions)."""
        if self._backend is None:
            if self.is_hardware:
                try:
                    from qiskit_ibm_runtime import QiskitRuntimeService

                    service = self._service or QiskitRuntimeService()
                    self._backend = service.backend(self.name)
                except Exception as exc:  # noqa: BLE001 - any account/network failure gets the same guidance
                    if "account" in type(exc).__name__.lower() or "account" in str(exc).lower():
                        raise HQCError(account_help(self.name)) from None
                    raise HQCError(f"could not reach IBM backend {self.name!r}: {exc}") from None
            else:
                from .devices import fake_backend

                self._backend = fake_backend(self.name)
        return self._backend

    def _transpiled(self, batch: CircuitBatch):
        """Compiled with the profile's snapshot target. For ``ibm_<device>`` that is the same chip's
        topology and basis (a valid ISA circuit there); its layout choice uses the snapshot calibration."""
        from .transpile import transpile_readout

        return transpile_readout(batch.ansatz, self.profile, batch.n_qubits, batch.n_layers)

    def measured_circuit(self, batch: CircuitBatch):
        """(transpiled readout, its ISA circuit measured on the outputs into 'meas'); built once per ansatz size."""
        from qiskit import ClassicalRegister

        key = (batch.ansatz, batch.n_qubits, batch.n_layers)
        if key not in self._measured:
            tr = self._transpiled(batch)
            circuit = tr.isa.copy()
            creg = ClassicalRegister(batch.n_qubits, "meas")
            circuit.add_register(creg)
            for q, phys in enumerate(tr.output_qubits):
                circuit.measure(phys, creg[q])
            self._measured[key] = (tr, circuit)
        return self._measured[key]

    def cost(self, batch, shots):
        from .devices import fake_backend

        shots = np.broadcast_to(np.asarray(shots, dtype=float), (len(batch),))
        tr, circuit = self.measured_circuit(batch)
        reference = fake_backend(tr.profile.target)   # durations from the snapshot (no network needed)
        duration = circuit.estimate_duration(reference.target, unit="s")
        rep_delay = getattr(reference, "default_rep_delay", None) or 250e-6
        jobs = math.ceil(len(batch) / self.options.max_circuits_per_job)
        seconds = float(np.sum(shots) * (duration + rep_delay) + 2.0 * jobs)
        return {"backend": self.name, "circuits": len(batch), "shots": int(np.sum(shots)), "jobs": jobs,
                "circuit_duration_us": duration * 1e6, "rep_delay_us": rep_delay * 1e6,
                "qpu_seconds": seconds, "estimate": "sum(shots * (circuit duration + rep_delay)) + 2 s per job"}

    def _sampler(self, mode):
        from qiskit_ibm_runtime import SamplerV2

        sampler = SamplerV2(mode=mode)
        if self.is_hardware:
            if self.options.dynamical_decoupling:
                sampler.options.dynamical_decoupling.enable = True
            if self.options.twirling:
                sampler.options.twirling.enable_gates = True
                sampler.options.twirling.enable_measure = True
        return sampler

    def _submit_with_retry(self, sampler, pubs, label: str):
        last = None
        for attempt in range(self.options.retries):
            try:
                return sampler.run(pubs).result()
            except Exception as exc:  # noqa: BLE001 - network errors and job failures are retried
                last = exc
                wait = self.options.backoff_seconds * 2**attempt
                print(f"[hqc-qiskit] job {label} failed ({type(exc).__name__}: {exc}); retry {attempt + 1}/"
                      f"{self.options.retries} in {wait:.0f} s")
                time.sleep(wait)
        raise EngineError(f"job {label} failed {self.options.retries} times; last error: {last}")

    def run(self, batch, shots, rng=None):
        from qiskit_ibm_runtime import Batch

        shots = np.broadcast_to(np.asarray(shots, dtype=float), (len(batch),)).astype(np.int64)
        estimate = self.cost(batch, shots)
        cap = self.options.max_qpu_seconds
        if cap is not None and estimate["qpu_seconds"] > cap:
            raise HQCError(f"estimated QPU time {estimate['qpu_seconds']:.0f} s exceeds --max-qpu-seconds {cap:.0f}; "
                           "nothing was submitted (lower --shots or raise the cap)")
        tr, circuit = self.measured_circuit(batch)
        params = tr.parameter_values(batch.x, batch.w, circuit)
        n = batch.n_qubits
        counts = np.zeros((len(batch), 2**n), dtype=np.int64)
        journal = Path(self.options.journal) if self.options.journal else None
        chunks = [np.arange(len(batch))[i:i + self.options.max_circuits_per_job]
                  for i in range(0, len(batch), self.options.max_circuits_per_job)]
        with Batch(backend=self.device) as mode:
            sampler = self._sampler(mode)
            for c, index in enumerate(chunks):
                key = _chunk_key(params[index], shots[index])
                saved = journal / f"{key}.npy" if journal else None
                if saved is not None and saved.exists():
                    counts[index] = np.load(saved)
                    continue
                pubs, order = [], []
                for s in np.unique(shots[index]):
                    rows = index[shots[index] == s]
                    pubs.append((circuit, params[rows], int(s)))
                    order.append(rows)
                result = self._submit_with_retry(sampler, pubs, f"{c + 1}/{len(chunks)}")
                for rows, pub_result in zip(order, result):
                    bits = pub_result.data.meas
                    for j, row in enumerate(rows):
                        ints = np.asarray(list(bits[j].get_int_counts().items()))
                        counts[row, ints[:, 0]] = ints[:, 1]
                if saved is not None:
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    tmp = saved.with_name(saved.name + ".tmp.npy")
                    np.save(tmp, counts[index])
                    os.replace(tmp, saved)
        mean, cov, shots_done = stats_from_counts(counts, n)
        return ZSamples(mean, cov, shots_done, qpu_seconds=estimate["qpu_seconds"] if self.is_hardware else 0.0,
                        info={"estimate": estimate})


def _chunk_key(params: np.ndarray, shots: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(params).tobytes())
    h.update(np.ascontiguousarray(shots).tobytes())
    return h.hexdigest()[:20]


def _default_profile(device: str) -> str:
    from .profiles import PROFILES_DIR, load_profile

    for path in sorted(PROFILES_DIR.glob("*.yaml")):
        profile = load_profile(path)
        if profile.target == device and profile.region == "all" and profile.dynamical_decoupling == "none":
            return path.stem
    raise ConfigError(f"no transpile profile targets {device}; add one to transpile_profiles/ (copy ibm_eagle.yaml)")


def make_backend(name: str, profile: str | None = None, scale: float = 1.0, mitigation: str | None = None,
                 runtime: RuntimeOptions | None = None) -> Backend:
    """Backend by name (see module docstring)."""
    options = MitigationOptions.parse(mitigation)
    if name == "exact":
        return ExactBackend()
    if name == "aer":
        return SimulatorBackend(None, profile, scale, options)
    if name.startswith("aer-noise:"):
        model, _, at_profile = name.removeprefix("aer-noise:").partition("@")
        return SimulatorBackend(model, at_profile or profile, scale, options)
    if name.startswith("fake_") or name.startswith("ibm_"):
        if options.zne_scale_factors or options.rem:
            raise ConfigError(f"{name}: use the runtime's own options (--dd, --twirling) on runtime backends; "
                              "mitiq mitigation applies to the aer backends")
        return RuntimeBackend(name, profile, runtime)
    raise ConfigError(f"unknown backend {name!r}; use exact, aer, aer-noise:<model>[@<profile>], fake_<device> or "
                      "ibm_<device> (see `hqc-qiskit backends`)")
