"""Transpile profiles (``transpile_profiles/*.yaml``): target device, optimization, layout, routing, DD.

A profile is looked up by name in the repository's ``transpile_profiles/`` folder, or given as a
path to a YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ..errors import ConfigError

PROFILES_DIR = Path(__file__).resolve().parents[2] / "transpile_profiles"


class TranspileProfile(BaseModel):
    """How logical readout circuits are compiled for a device."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    target: str = "ideal"                      # 'ideal', 'custom' or a fake device name ('fake_brisbane')
    basis_gates: list[str] | None = None       # ideal/custom targets
    coupling_map: list[tuple[int, int]] | None = None  # custom target (undirected edges)
    optimization_level: Literal[0, 1, 2, 3] = 3
    layout_method: Literal["default", "trivial", "dense", "sabre"] = "default"  # default: sabre + noise-aware VF2 post-layout
    routing_method: Literal["default", "basic", "lookahead", "sabre", "none"] = "default"
    initial_layout: list[int] | None = None    # physical qubit of each logical qubit (optional)
    seed: int = 0
    dynamical_decoupling: Literal["none", "XX"] = "none"
    # 'alap': schedule the circuit (as late as possible) with the target's gate durations and fill idle
    # windows with delays, so noise models relax idle qubits as hardware does (Aer's delay relaxation);
    # 'none': no schedule, idle qubits are noiseless in simulation. 'auto': alap on device targets.
    schedule: Literal["auto", "alap", "none"] = "auto"
    # 'compact': compile onto a connected region of exactly as many physical qubits as the circuit has
    # (chosen for low two-qubit error), so routing adds no extra qubits: cheaper to simulate, often
    # more SWAPs. 'all': the transpiler may use any qubit of the device.
    region: Literal["all", "compact"] = "all"
    # a stored calibration of the device (`hqc-qiskit noise-snapshot`), relative to the YAML's folder: placement
    # (compact region, noise-aware layout) and timing from it instead of the fake backend's old calibration
    calibration: str | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.target == "custom" and not self.coupling_map:
            raise ValueError("target 'custom' needs a coupling_map (list of [q0, q1] edges)")
        if self.target in ("ideal", "custom") and not self.basis_gates:
            raise ValueError(f"target {self.target!r} needs basis_gates")
        if self.region == "compact" and not self.is_device:
            raise ValueError("region 'compact' needs a device target")
        if self.calibration is not None and not self.is_device:
            raise ValueError("'calibration' needs a device target (the chip it calibrates)")
        if not self.is_device and (self.dynamical_decoupling != "none" or self.schedule == "alap"):
            raise ValueError("scheduling and dynamical decoupling need gate durations: use a device target")
        if self.dynamical_decoupling != "none" and self.schedule == "none":
            raise ValueError("dynamical decoupling pads the idle windows of a schedule: drop 'schedule: none'")
        return self

    @property
    def is_device(self) -> bool:
        return self.target not in ("ideal", "custom")

    @property
    def scheduled(self) -> bool:
        """Whether idle windows become delays (and so relax in noisy simulation)."""
        return self.schedule == "alap" or (self.schedule == "auto" and self.is_device)


def named_yaml_files(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_named_yaml(name_or_path: str | Path, folder: Path, model: type[BaseModel], what: str):
    """Validate ``folder/<name>.yaml`` (or a YAML path) as ``model``; errors name the file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(f"{path}: no such {what}; available: {', '.join(named_yaml_files(folder))}")
    try:
        return model.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid {what}: {exc}") from None


def profile_names() -> list[str]:
    return named_yaml_files(PROFILES_DIR)


def compact_profiles_of(target: str) -> list[str]:
    """Names of the shipped profiles that compile onto a compact region of the device ``target`` ('fake_torino')."""
    names = []
    for name in profile_names():
        try:
            profile = load_profile(name)
        except ConfigError:   # a broken profile file is reported where it is used, not here
            continue
        if profile.target == target and profile.region == "compact":
            names.append(name)
    return names


def load_profile(name_or_path: str | Path) -> TranspileProfile:
    """Profile by name (``transpile_profiles/<name>.yaml``) or path to a YAML file; a stored calibration's path is
    resolved against the YAML's folder."""
    profile = load_named_yaml(name_or_path, PROFILES_DIR, TranspileProfile, "transpile profile")
    return with_resolved_calibration(profile, name_or_path, PROFILES_DIR, "transpile profile")


def with_resolved_calibration(spec: BaseModel, name_or_path: str | Path, folder: Path, what: str) -> BaseModel:
    """``spec`` with its ``calibration`` (relative to the YAML it was read from) as a path that exists."""
    if getattr(spec, "calibration", None) is None:
        return spec
    path = Path(name_or_path)
    resolved = (path.parent if path.suffix else folder) / spec.calibration
    if not resolved.exists():
        raise ConfigError(f"{what} {spec.name!r}: its calibration file {resolved} does not exist")
    return spec.model_copy(update={"calibration": str(resolved)})
