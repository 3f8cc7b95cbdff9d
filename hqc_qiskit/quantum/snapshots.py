"""Noise snapshots of a device's current calibration: ``noise_models/<name>.yaml`` + ``<name>.calibration.json.gz``.

The shipped device noise models take their calibration from qiskit-ibm-runtime's fake backends, snapshots of
months or years ago; a device's error rates drift (``noise_calibration`` measures by how much, and its chi2
says when no scale of the old snapshot will do). A new snapshot stores the device's ``BackendProperties``
(per-qubit T1, T2, readout error; per-gate error and duration) as the runtime returns them, next to a YAML that
names the fake backend of the same chip for its topology and the transpile profile to compile with. The noise
of ``aer-noise:<name>@<profile>`` then comes from the stored calibration on the qubits the profile uses, exactly
as for the fake backend's own (the same Aer construction; a snapshot of a fake backend reproduces it).

Why hand-written: qiskit-ibm-runtime reads and converts the calibration (``BackendProperties``,
``convert_to_target``); what is stored, where, and how a noise model finds it is this project's.
"""

from __future__ import annotations

import datetime
import functools
import gzip
import json
import os
from pathlib import Path

import yaml

from ..errors import ConfigError, HQCError

CALIBRATION_SUFFIX = ".calibration.json.gz"


def topology_device(backend_name: str) -> str:
    """The fake backend of the same chip as ``backend_name`` ('ibm_brisbane' or 'fake_brisbane' -> 'fake_brisbane')."""
    from .devices import fake_device_names

    device = "fake_" + backend_name.removeprefix("ibm_").removeprefix("fake_")
    if device not in fake_device_names():
        raise ConfigError(f"{backend_name}: qiskit-ibm-runtime ships no fake backend {device!r} of this chip, whose "
                          "topology and gate set a snapshot needs; snapshots cover the devices of `hqc-qiskit backends`")
    return device


def default_profile(device: str) -> str:
    """The transpile profile of the shipped noise model of ``device`` (e.g. 'ibm_eagle_compact'), else the
    device's plain profile."""
    from .backends import RuntimeBackend
    from .noise import load_noise_spec, noise_model_names

    for name in noise_model_names():
        spec = load_noise_spec(name)
        if spec.kind == "device" and spec.device == device and spec.calibration is None:
            return spec.profile
    return RuntimeBackend(device).profile      # the plain profile of the whole chip


def write_snapshot(backend, name: str, folder: Path, profile: str | None = None, overwrite: bool = False,
                   description: str | None = None, placement: bool = True) -> Path:
    """Store the current calibration of ``backend`` (an IBM or fake runtime backend) as noise model ``name`` in
    ``folder``: ``<name>.yaml`` and ``<name>.calibration.json.gz``. Returns the YAML's path.

    With ``placement`` and ``folder`` the project's noise_models/, also the transpile profile ``name`` (a copy of
    ``profile``, default the chip's shipped one, with the stored calibration): the compact region, layout and
    timing are then chosen on the new calibration too, and the noise model compiles with it. Without, the
    circuits keep the old profile's placement (only the noise is new)."""
    from qiskit_ibm_runtime.fake_provider.fake_backend import BackendEncoder

    from ..checkpoint import atomic_write_bytes
    from .noise import NOISE_DIR, load_noise_spec
    from .profiles import PROFILES_DIR, load_profile

    device = topology_device(backend.name)
    yaml_path, data_path = folder / f"{name}.yaml", folder / f"{name}{CALIBRATION_SUFFIX}"
    placement = placement and Path(folder).resolve() == Path(NOISE_DIR).resolve()
    profile_path = Path(PROFILES_DIR) / f"{name}.yaml"
    existing = [str(p) for p in (yaml_path, data_path, profile_path if placement else None) if p and p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{', '.join(existing)} already exist(s): choose another --name or pass --overwrite")
    base = profile or default_profile(device)
    is_hardware = backend.name.startswith("ibm_")
    props = backend.properties(refresh=True) if is_hardware else backend.properties()
    if props is None:
        raise HQCError(f"{backend.name} returned no calibration (BackendProperties)")
    data = json.dumps(props.to_dict(), cls=BackendEncoder).encode()
    description = description or (f"calibration of {backend.name} as of {props.last_update_date}, taken "
                                  f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
                                  f"`hqc-qiskit noise-snapshot`; topology and gate set of {device}")
    spec = {"name": name, "kind": "device", "device": device, "calibration": data_path.name,
            "profile": name if placement else base, "description": description}
    atomic_write_bytes(gzip.compress(data, mtime=0), data_path)
    if placement:
        placed = load_profile(base).model_dump(exclude_defaults=True)
        placed.update(name=name, description=f"{placed.get('description', base)}, placed on the calibration of "
                      f"noise model {name}", calibration=os.path.relpath(data_path, profile_path.parent))
        atomic_write_bytes(yaml.safe_dump(placed, sort_keys=False).encode(), profile_path)
        load_profile(name)
    atomic_write_bytes(yaml.safe_dump(spec, sort_keys=False).encode(), yaml_path)
    load_noise_spec(yaml_path)    # what was written loads (and its calibration with it, below)
    calibrated_target(device, data_path)
    return yaml_path


def device_target(device: str, calibration: str | Path | None = None):
    """The Target of fake backend ``device``, with the stored ``calibration`` when given."""
    if calibration is None:
        from .devices import fake_backend

        return fake_backend(device).target
    return calibrated_target(device, Path(calibration))


def calibrated_target(device: str, calibration: Path):
    """The Target of fake backend ``device`` (topology, gates) with the calibration stored in ``calibration``."""
    calibration = Path(calibration)
    if not calibration.exists():
        raise ConfigError(f"{calibration}: no such calibration file (named by a noise model's 'calibration')")
    return _calibrated_target(device, str(calibration.resolve()), calibration.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _calibrated_target(device: str, path: str, _mtime: int):
    from qiskit_ibm_runtime.fake_provider.fake_backend import properties_from_server_data
    from qiskit_ibm_runtime.models import BackendProperties
    from qiskit_ibm_runtime.utils.backend_converter import convert_to_target

    from .devices import fake_backend

    topology = fake_backend(device)
    try:
        with gzip.open(path, "rt") as fh:
            data = json.load(fh)
        properties_from_server_data(data)
        props = BackendProperties.from_dict(data)
        target = convert_to_target(configuration=topology.configuration(), properties=props,
                                   include_control_flow=True, include_fractional_gates=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable device calibration ({type(exc).__name__}: {exc})") from None
    if len(props.qubits) != topology.num_qubits:
        raise ConfigError(f"{path}: calibrates {len(props.qubits)} qubits, but {device} has {topology.num_qubits}; "
                          "a snapshot must be of the same chip")
    return target
