"""Noise models (``noise_models/*.yaml``) as Aer noise models restricted to the qubits a readout uses.

Two kinds:

* ``parametric``: depolarizing 1q/2q errors, optional thermal relaxation (T1, T2, gate times) and a
  symmetric readout error, the same on every qubit;
* ``device``: the per-qubit, per-gate calibration of a fake backend snapshot (or of a stored calibration of
  the same chip, ``calibration:``, see ``snapshots``), built exactly as Aer's
  ``NoiseModel.from_backend`` does (depolarizing + thermal relaxation per gate, readout error per
  qubit, relaxation on delays) but only for the active qubits of a transpiled readout, relabelled
  0..n-1. That is what makes noisy simulation of a 127-qubit device cheap. The delay relaxation is
  kept beside the Aer model (``ReducedNoise.idle``) and written into the circuit by the simulator
  (``simulate.explicit_idle_relaxation``); ``ReducedNoise.aer_model()`` is Aer's own form of the same.

``scale`` multiplies every error rate (gate errors, readout errors, 1/T1, 1/T2): 0 = noiseless,
1 = the model as specified.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from qiskit.circuit import Delay
from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error, thermal_relaxation_error
from qiskit_aer.noise.device import basic_device_gate_errors
from qiskit_aer.noise.passes import RelaxationNoisePass

from ..errors import ConfigError
from .devices import reduced_target, relaxation_times
from .profiles import load_named_yaml, named_yaml_files, with_resolved_calibration
from .transpile import TranspiledReadout

NOISE_DIR = Path(__file__).resolve().parents[2] / "noise_models"
_VIRTUAL = {"rz", "delay", "barrier", "measure", "reset", "id"}   # no gate error (rz is a frame change)


class NoiseSpec(BaseModel):
    """A noise model file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["parametric", "device"]
    description: str = ""
    # parametric
    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    t1_us: float | None = None
    t2_us: float | None = None
    gate_time_1q_ns: float = 60.0
    gate_time_2q_ns: float = 660.0
    readout_error: float = 0.0
    # device
    device: str | None = None
    # a stored calibration of that chip (`hqc-qiskit noise-snapshot`), relative to the YAML's folder; None: the fake
    # backend's own
    calibration: str | None = None
    profile: str = "ideal"     # transpile profile used when none is given

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "device" and not self.device:
            raise ValueError("a 'device' noise model needs device: fake_<name>")
        if self.calibration is not None and self.kind != "device":
            raise ValueError("'calibration' belongs to 'device' noise models")
        for key in ("depolarizing_1q", "depolarizing_2q", "readout_error"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} must be in [0, 1]")
        if (self.t1_us is None) != (self.t2_us is None):
            raise ValueError("give both t1_us and t2_us, or neither")
        return self


def noise_model_names() -> list[str]:
    return named_yaml_files(NOISE_DIR)


def load_noise_spec(name_or_path: str | Path) -> NoiseSpec:
    """Noise model by name (``noise_models/<name>.yaml``) or path to a YAML file; a stored calibration's path
    is resolved against the YAML's folder."""
    spec = load_named_yaml(name_or_path, NOISE_DIR, NoiseSpec, "noise model")
    return with_resolved_calibration(spec, name_or_path, NOISE_DIR, "noise model")


@dataclass
class ReducedNoise:
    """An Aer noise model on the reduced register plus each qubit's readout confusion P(measured | prepared)."""

    model: NoiseModel | None
    readout: dict[int, np.ndarray] = field(default_factory=dict)   # reduced qubit -> (2, 2), [prepared, measured]
    idle: RelaxationNoisePass | None = None     # thermal relaxation of each delay (device models), no thermal excitation

    def aer_model(self) -> NoiseModel | None:
        """The whole noise as one Aer model, delay relaxation as Aer's custom noise pass (what
        ``NoiseModel.from_backend`` builds): the reference the simulator's explicit form is tested against."""
        if self.model is None or self.idle is None:
            return self.model
        model = copy.deepcopy(self.model)
        model._custom_noise_passes.append(self.idle)   # Aer has no public setter; from_backend does the same
        return model


def _symmetric_readout(p: float) -> np.ndarray:
    return np.array([[1.0 - p, p], [p, 1.0 - p]])


def _parametric(spec: NoiseSpec, tr: TranspiledReadout, scale: float) -> ReducedNoise:
    ops = {inst.operation.name: inst.operation.num_qubits for inst in tr.isa.data}
    model = NoiseModel(basis_gates=sorted(ops))
    relax = spec.t1_us is not None and scale > 0
    for name, n in ops.items():
        if name in _VIRTUAL:
            continue
        p = min(1.0, (spec.depolarizing_1q if n == 1 else spec.depolarizing_2q) * scale)
        error = depolarizing_error(p, n)
        if relax:
            t_gate = spec.gate_time_1q_ns if n == 1 else spec.gate_time_2q_ns
            t1, t2 = spec.t1_us * 1e3 / scale, min(spec.t2_us, 2 * spec.t1_us) * 1e3 / scale
            single = thermal_relaxation_error(t1, t2, t_gate)
            relaxation = single if n == 1 else single.tensor(single)
            error = error.compose(relaxation)
        model.add_all_qubit_quantum_error(error, name)
    p_ro = min(0.5, spec.readout_error * scale)
    readout = {i: _symmetric_readout(p_ro) for i in range(len(tr.active_qubits))}
    if p_ro > 0:
        model.add_all_qubit_readout_error(ReadoutError(readout[0]))
    return ReducedNoise(model, readout)


def _device(spec: NoiseSpec, tr: TranspiledReadout, scale: float) -> ReducedNoise:
    if tr.target is None or tr.profile.target != spec.device:
        raise ConfigError(
            f"noise model {spec.name!r} is a snapshot of {spec.device}; transpile for that device "
            f"(profile {spec.profile!r}), not with profile {tr.profile.name!r}")
    # the noise model's own calibration (the fake backend's, or one stored by noise-snapshot), whatever
    # calibration the profile placed the circuit with
    from .snapshots import device_target

    full = device_target(spec.device, spec.calibration)
    if spec.calibration is not None:
        _check_calibrated(spec, tr, full)
    target = reduced_target(full, tr.active_qubits, scale)
    model = NoiseModel(basis_gates=[n for n in target.operation_names])
    readout = {}
    for i in range(target.num_qubits):
        ip = target["measure"].get((i,)) if "measure" in target else None
        p = 0.0 if ip is None or ip.error is None else min(ip.error, 1.0)
        readout[i] = _symmetric_readout(p)   # Aer's basic_device_readout_errors: symmetric, from target error
        if p > 0:
            model.add_readout_error(ReadoutError(readout[i]), [i])
    if scale > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, qubits, error in basic_device_gate_errors(target=target):
                model.add_quantum_error(error, name, qubits)
        t1s, t2s = zip(*(relaxation_times(q) for q in target.qubit_properties))
        idle = RelaxationNoisePass(t1s=list(t1s), t2s=list(t2s), dt=target.dt, op_types=Delay, target=target)
        return ReducedNoise(model, readout, idle)   # idle (delay) relaxation, as NoiseModel.from_backend adds it
    return ReducedNoise(model, readout)


def _check_calibrated(spec: NoiseSpec, tr: TranspiledReadout, target) -> None:
    """ConfigError if the stored calibration lacks an operation the readout's circuit uses (a qubit or gate the
    device now reports as faulty: qiskit-ibm-runtime drops those from the target, and the noise model would
    silently have no error there)."""
    for inst in tr.isa.data:
        name = inst.operation.name
        if name in ("barrier", "delay"):
            continue
        qargs = tuple(tr.isa.find_bit(q).index for q in inst.qubits)
        if not target.instruction_supported(name, qargs):
            raise ConfigError(f"noise model {spec.name!r}: its calibration ({spec.calibration}) has no {name} on "
                              f"qubits {list(qargs)}, which profile {tr.profile.name!r} uses (faulty or uncalibrated "
                              "there now); use a profile that avoids them (e.g. initial_layout)")


def reduced_noise(spec: NoiseSpec | str | None, tr: TranspiledReadout, scale: float = 1.0) -> ReducedNoise:
    """Noise of ``spec`` on the active qubits of ``tr`` (reduced register); ``None`` -> noiseless."""
    if not scale >= 0:   # also refuses NaN
        raise ConfigError(f"noise scale must be >= 0, got {scale}")
    if spec is None:
        return ReducedNoise(None, {})
    spec = load_noise_spec(spec) if not isinstance(spec, NoiseSpec) else spec
    return _parametric(spec, tr, scale) if spec.kind == "parametric" else _device(spec, tr, scale)


def full_device_noise_model(spec: NoiseSpec | str) -> NoiseModel:
    """Aer's own ``NoiseModel.from_backend`` for a device snapshot (the whole chip): the reference."""
    from .devices import fake_backend

    spec = load_noise_spec(spec) if not isinstance(spec, NoiseSpec) else spec
    if spec.kind != "device":
        raise ConfigError(f"{spec.name!r} is parametric; the full-device reference needs a device snapshot")
    return NoiseModel.from_backend(fake_backend(spec.device))
