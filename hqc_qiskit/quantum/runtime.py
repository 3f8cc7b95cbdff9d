"""IBM Runtime execution (``fake_<device>`` in local mode, ``ibm_<device>`` on hardware).

Two primitives of qiskit-ibm-runtime, both the client-side implementations that replace the
``SamplerV2``/``EstimatorV2`` (deprecated in qiskit-ibm-runtime 0.50):

* Sampler (default): the readout's output qubits are measured together, so the n <Z_q> of a circuit
  and their per-shot covariance come from the same shots (exactly what ``estimate.py`` propagates).
  Runtime error suppression: dynamical decoupling, gate and measurement twirling.
* Estimator: chosen when the runtime's own error mitigation is asked for (``resilience_level`` 0/1/2,
  or ``--mitigation`` rem / zne on a runtime backend: measurement-error mitigation (TREX) and
  zero-noise extrapolation run by the runtime). It returns each <Z_q> with a standard error but no
  covariance between the Z_q of one circuit, so the energy's standard error from this path uses the
  diagonal only (stated in the energy's info).

All parameter sets of one shot count go out as one PUB (parameter array), chunks of at most
``max_circuits_per_job`` per job inside a ``Batch``. A job journal (``journal``) keeps every finished
job's data, keyed by circuits, parameters, shots and options, so a resumed run never pays twice.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EngineError, HQCError
from .backends import Backend, CircuitBatch, ZSamples, stats_from_counts
from .mitigation import MitigationOptions

# Local mode runs the runtime Estimator on a simulation of every qubit of the device; above this the
# state does not fit (Aer: "a circuit requires more memory than max_memory_mb" on fake_brisbane). At 16
# qubits (fake_guadalupe) it runs, slowly: minutes per job even for a few small circuits on 2 cores.
MAX_LOCAL_ESTIMATOR_QUBITS = 16


@dataclass
class RuntimeOptions:
    """IBM Runtime options (the runtime's own error suppression and mitigation) and job limits."""

    dynamical_decoupling: bool = False
    twirling: bool = False
    resilience_level: int | None = None      # Estimator preset (0: none, 1: TREX, 2: TREX + ZNE); None: Sampler
    measure_mitigation: bool = False         # Estimator: runtime measurement-error mitigation (TREX)
    zne_factors: tuple[int, ...] = ()        # Estimator: runtime zero-noise extrapolation noise factors
    zne_method: str = "richardson"
    max_qpu_seconds: float | None = None     # hard cap: refuse to submit above the estimate
    max_circuits_per_job: int = 2000         # parameter sets per submitted job
    retries: int = 4                         # per job, with exponential backoff
    backoff_seconds: float = 2.0
    journal: str | None = None               # folder keeping every finished job's data (resume)
    seed: int | None = None                  # local mode: seed of the simulator (hardware ignores it)

    def __post_init__(self):
        if self.resilience_level not in (None, 0, 1, 2):
            raise ConfigError(f"resilience level must be 0, 1 or 2, got {self.resilience_level}")

    @property
    def primitive(self) -> str:
        mitigated = self.resilience_level is not None or self.measure_mitigation or bool(self.zne_factors)
        return "estimator" if mitigated else "sampler"

    def with_mitigation(self, mitigation: MitigationOptions) -> "RuntimeOptions":
        """The ``--mitigation`` spec of the aer backends, done by the runtime instead of mitiq."""
        return replace(self, measure_mitigation=self.measure_mitigation or mitigation.rem,
                       zne_factors=tuple(mitigation.zne_scale_factors) or self.zne_factors,
                       zne_method=mitigation.zne_method)

    def key(self) -> str:
        """What changes the measured data (journal entries are only reused under the same options)."""
        d = asdict(self)
        return repr({k: d[k] for k in ("dynamical_decoupling", "twirling", "resilience_level", "measure_mitigation",
                                       "zne_factors", "zne_method", "seed")})


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
    """qiskit-ibm-runtime Sampler or Estimator in batch mode: a fake device (local mode) or IBM hardware.

    Circuits are the full-device ISA circuits of the profile (for the Sampler measured on the output
    qubits)."""

    def __init__(self, name: str, profile: str | None = None, options: RuntimeOptions | None = None, service=None):
        self.name = name
        self.options = options or RuntimeOptions()
        self.is_hardware = name.startswith("ibm_")
        self._service = service
        self._backend = None
        self._measured: dict = {}
        device = name if not self.is_hardware else "fake_" + name.removeprefix("ibm_")
        self.profile = profile or _default_profile(device, name)

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

    def _noise_factors(self) -> tuple[int, ...]:
        if self.options.zne_factors:
            return self.options.zne_factors
        return (1, 3, 5) if self.options.resilience_level == 2 else (1,)   # the runtime's level-2 default

    def cost(self, batch, shots):
        from .devices import fake_backend

        shots = np.broadcast_to(np.asarray(shots, dtype=float), (len(batch),))
        tr, circuit = self.measured_circuit(batch)
        reference = fake_backend(tr.profile.target)   # durations from the snapshot (no network needed)
        duration = circuit.estimate_duration(reference.target, unit="s")
        rep_delay = getattr(reference, "default_rep_delay", None) or 250e-6
        jobs = math.ceil(len(batch) / self.options.max_circuits_per_job) * len(np.unique(shots))
        factors = self._noise_factors()
        # ZNE runs every circuit at each noise factor, amplified circuits last ~factor times longer
        seconds = float(np.sum(shots) * (sum(factors) * duration + len(factors) * rep_delay) + 2.0 * jobs)
        return {"backend": self.name, "primitive": self.options.primitive, "circuits": len(batch),
                "shots": int(np.sum(shots)), "jobs": jobs, "noise_factors": list(factors),
                "circuit_duration_us": duration * 1e6, "rep_delay_us": rep_delay * 1e6, "qpu_seconds": seconds,
                "estimate": "sum(shots * (sum(noise factors) * circuit duration + n_factors * rep_delay)) + 2 s per job; "
                            "measurement-mitigation calibration and twirling overheads not included"}

    def _primitive(self, mode):
        """The configured client-side primitive (qiskit_ibm_runtime.executor_sampler/executor_estimator)."""
        o = self.options
        if o.primitive == "sampler":
            from qiskit_ibm_runtime.executor_sampler import Sampler

            primitive = Sampler(mode=mode)
        else:
            from qiskit_ibm_runtime.executor_estimator import Estimator

            primitive = Estimator(mode=mode)
            primitive.options.resilience_level = o.resilience_level if o.resilience_level is not None else 0
            if o.measure_mitigation:
                primitive.options.resilience.measure_mitigation = True
            if o.zne_factors:
                primitive.options.resilience.zne_mitigation = True
                primitive.options.resilience.zne.noise_factors = [float(f) for f in o.zne_factors]
                # mitiq's Richardson through n points is the runtime's polynomial of degree n - 1
                degree = min(len(o.zne_factors) - 1, 7)
                primitive.options.resilience.zne.extrapolator = (
                    "linear" if o.zne_method == "linear" else f"polynomial_degree_{degree}")
        if o.dynamical_decoupling:
            primitive.options.dynamical_decoupling.enable = True
        if o.twirling:
            primitive.options.twirling.enable_gates = True
            primitive.options.twirling.enable_measure = True
        if not self.is_hardware and o.seed is not None:
            primitive.options.simulator.seed_simulator = int(o.seed)
        return primitive

    def _submit_with_retry(self, primitive, pubs, label: str):
        last = None
        for attempt in range(self.options.retries):
            try:
                return primitive.run(pubs).result()
            except Exception as exc:  # noqa: BLE001 - network errors and job failures are retried
                last = exc
                wait = self.options.backoff_seconds * 2**attempt
                print(f"[hqc-qiskit] job {label} failed ({type(exc).__name__}: {exc}); retry {attempt + 1}/"
                      f"{self.options.retries} in {wait:.0f} s")
                time.sleep(wait)
        raise EngineError(f"job {label} failed {self.options.retries} times; last error: {last}")

    def _check_local_estimator(self):
        n = self.device.num_qubits
        if self.options.primitive == "estimator" and not self.is_hardware and n > MAX_LOCAL_ESTIMATOR_QUBITS:
            raise ConfigError(
                f"{self.name}: the runtime Estimator (needed for --resilience-level / runtime mitigation) simulates all "
                f"{n} qubits of the device in local mode, which does not fit in memory. Offline, use a small device "
                "(--backend fake_guadalupe, 16 qubits, slow; fake_manila, 5 qubits, for circuits of up to 5 qubits), or the fast simulator with mitiq: --backend "
                f"aer-noise:{self.name} --mitigation zne+rem. On hardware (ibm_<device>) this limit does not apply.")

    def _job_data(self, primitive, circuit, observables, params, shots: int, label: str) -> np.ndarray:
        """One job; per row: counts (2^n,) for the Sampler, [<Z_q> (n), std (n)] for the Estimator."""
        n = len(observables)
        if self.options.primitive == "sampler":
            result = self._submit_with_retry(primitive, [(circuit, params, int(shots))], label)
            bits = result[0].data.meas
            counts = np.zeros((len(params), 2**n), dtype=np.int64)
            for j in range(len(params)):
                ints = np.asarray(list(bits[j].get_int_counts().items()))
                counts[j, ints[:, 0]] = ints[:, 1]
            return counts
        primitive.options.default_shots = int(shots)
        obs = [[o] for o in observables]              # shape (n, 1), broadcast against the rows
        result = self._submit_with_retry(primitive, [(circuit, obs, params)], label)
        evs, stds = np.asarray(result[0].data.evs, float), np.asarray(result[0].data.stds, float)   # (n, rows)
        return np.concatenate([evs.T, stds.T], axis=1)

    def run(self, batch, shots, rng=None):
        from qiskit.quantum_info import SparsePauliOp
        from qiskit_ibm_runtime import Batch

        shots = np.broadcast_to(np.asarray(shots, dtype=float), (len(batch),)).astype(np.int64)
        estimate = self.cost(batch, shots)
        cap = self.options.max_qpu_seconds
        if cap is not None and estimate["qpu_seconds"] > cap:
            raise HQCError(f"estimated QPU time {estimate['qpu_seconds']:.0f} s exceeds --max-qpu-seconds {cap:.0f}; "
                           "nothing was submitted (lower --shots or raise the cap)")
        self._check_local_estimator()
        tr, measured = self.measured_circuit(batch)
        sampler = self.options.primitive == "sampler"
        circuit = measured if sampler else tr.isa
        observables = [SparsePauliOp.from_sparse_list([("Z", [p], 1.0)], num_qubits=tr.isa.num_qubits)
                       for p in tr.output_qubits]
        params = tr.parameter_values(batch.x, batch.w, circuit)
        n = batch.n_qubits
        data = np.zeros((len(batch), 2**n if sampler else 2 * n))
        journal = Path(self.options.journal) if self.options.journal else None
        per_job = self.options.max_circuits_per_job
        jobs = [rows[i:i + per_job] for s in np.unique(shots) for rows in [np.flatnonzero(shots == s)]
                for i in range(0, len(rows), per_job)]
        with Batch(backend=self.device) as mode:
            primitive = self._primitive(mode)
            for c, rows in enumerate(jobs):
                key = _job_key(params[rows], shots[rows], self.options.key() + str(tr.output_qubits))
                saved = journal / f"{key}.npy" if journal else None
                if saved is not None and saved.exists():
                    data[rows] = np.load(saved)
                    continue
                data[rows] = self._job_data(primitive, circuit, observables, params[rows], int(shots[rows[0]]),
                                            f"{c + 1}/{len(jobs)}")
                if saved is not None:
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    tmp = saved.with_name(saved.name + ".tmp.npy")
                    np.save(tmp, data[rows])
                    os.replace(tmp, saved)
        info = {"estimate": estimate, "primitive": self.options.primitive}
        qpu = estimate["qpu_seconds"] if self.is_hardware else 0.0
        if sampler:
            mean, cov, shots_done = stats_from_counts(data.astype(np.int64), n)
            return ZSamples(mean, cov, shots_done, qpu_seconds=qpu, info=info)
        # Estimator: standard errors only; per-shot variance = std^2 * shots keeps cov / shots = std^2
        mean, std = data[:, :n], data[:, n:]
        cov = np.zeros((len(batch), n, n))
        cov[:, np.arange(n), np.arange(n)] = std**2 * shots[:, None]
        info["covariance"] = "diagonal (runtime Estimator gives per-observable standard errors only)"
        return ZSamples(mean, cov, shots.astype(float), qpu_seconds=qpu, info=info)


def _job_key(params: np.ndarray, shots: np.ndarray, extra: str) -> str:
    h = hashlib.sha256(np.ascontiguousarray(params).tobytes())
    h.update(np.ascontiguousarray(shots).tobytes())
    h.update(extra.encode())
    return h.hexdigest()[:20]


def _default_profile(device: str, backend: str) -> str:
    """The shipped transpile profile that compiles ``backend`` for the whole of snapshot ``device`` ('fake_brisbane')."""
    from .devices import fake_device_names
    from .profiles import PROFILES_DIR, load_profile

    known = fake_device_names()
    if device not in known:
        raise ConfigError(f"{backend}: no device snapshot {device!r} in qiskit-ibm-runtime to compile for (available: "
                          f"{', '.join(known)}); name a transpile profile for this chip with --profile")
    for path in sorted(PROFILES_DIR.glob("*.yaml")):
        profile = load_profile(path)
        if profile.target == device and profile.region == "all" and profile.dynamical_decoupling == "none":
            return path.stem
    raise ConfigError(f"no transpile profile targets {device}; add one to transpile_profiles/ (copy ibm_eagle.yaml)")
