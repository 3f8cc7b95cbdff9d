"""Atomic checkpoint files and rebuilding a model from a checkpoint or run directory alone."""

from __future__ import annotations

import copy
import functools
import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import HQCError
from .model.potential import HQCPotential, build_model
from .quantum.noisy_readout import STATE_SUFFIXES
from .torch_device import flush_denormals as _flush_denormals

CHECKPOINT = "checkpoint.pt"   # latest state (resume)
BEST = "best_model.pt"         # EMA weights with the best validation loss


def refuse_to_overwrite(results: Path, resumable: bool = False) -> None:
    """Stop (HQCError) before a rerun replaces the finished results in ``results``: nothing computed is lost
    to a forgotten --resume or a reused --out."""
    if results.exists():
        keep = "--resume to keep its points and compute the rest, " if resumable else ""
        raise HQCError(f"{results} exists: pass {keep}--overwrite to replace it, or choose another --out")


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Bytes to a temporary file in the same folder, then rename (same guarantee as :func:`atomic_save`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def atomic_write_json(obj, path: str | Path) -> None:
    """JSON to a temporary file in the same folder, then rename (same guarantee as :func:`atomic_save`)."""
    atomic_write_bytes(json.dumps(obj, indent=2).encode(), path)


def model_payload(model: HQCPotential, coverage: dict | None = None) -> dict:
    """What rebuilds a model: its config (hyperparameters) and weights; with ``coverage`` also what it was trained
    on (:mod:`.coverage`, stored as ``training_coverage``)."""
    payload = {"model_config": model.config.model_dump(mode="json"), "model_state": model.state_dict()}
    if coverage is not None:
        payload["training_coverage"] = coverage
    return payload


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The dict a checkpoint file holds; HQCError naming the file if it is truncated or not one torch wrote."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError, ValueError, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HQCError(f"{path}: unreadable checkpoint, truncated or not written by torch.save ({reason})") from None
    if not isinstance(payload, dict):
        raise HQCError(f"{path}: not an hqc-qiskit checkpoint (holds a {type(payload).__name__}, not a dict)")
    return payload


def read_model_payload(path: str | Path, which: str = "best", map_location="cpu") -> tuple[Path, dict]:
    """(checkpoint file, its payload) of a checkpoint file or a run directory (``which``: 'best' or 'last');
    HQCError naming the path when there is none or it holds no model."""
    path = Path(path)
    if which not in ("best", "last"):
        raise HQCError(f"which checkpoint: 'best' or 'last', not {which!r}")
    if path.is_dir():
        candidates = [path / BEST, path / CHECKPOINT] if which == "best" else [path / CHECKPOINT]
        found = [p for p in candidates if p.exists()]
        if not found:
            raise HQCError(f"{path}: no {' or '.join(c.name for c in candidates)} in this run directory")
        path = found[0]
    if not path.exists():
        raise HQCError(f"{path}: no such run directory or checkpoint file (pass the folder `hqc-qiskit train` wrote, "
                       "or one of its .pt files)")
    payload = read_checkpoint(path, map_location)
    if "model_config" not in payload or "model_state" not in payload:
        raise HQCError(f"{path}: not an hqc-qiskit checkpoint (no model_config / model_state)")
    return path, payload


def load_model(path: str | Path, which: str = "best", map_location="cpu", flush_denormals: bool = True) -> HQCPotential:
    """Model from a checkpoint file, or from a run directory (``which``: 'best' or 'last'), for inference:
    in eval mode with frozen parameters (forces still work; the exact quantum readouts then build their
    circuit unitary once instead of per call). Call ``model.requires_grad_(True)`` to train it further.
    ``flush_denormals``: on a CPU, make the process treat subnormal floats as zero (hqc_qiskit.torch_device.
    flush_denormals: a trained model's energy and forces can be much slower with them, benchmarks/denormals.py);
    False leaves the process's floating-point mode alone."""
    if flush_denormals and isinstance(map_location, (str, torch.device)) and torch.device(map_location).type == "cpu":
        _flush_denormals()
    path, payload = read_model_payload(path, which, map_location)
    config = dict(payload["model_config"])
    if config.get("tensor_product") == "split":
        # checkpoints written before 'grouped' existed: same numbers (tests/test_physics.py), faster
        config["tensor_product"] = "grouped"
    model = copy.deepcopy(_built(json.dumps(config, sort_keys=True)))
    model.load_state_dict(payload["model_state"])
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=8)
def _built(config_json: str) -> HQCPotential:
    """A model of this configuration as built, never run nor loaded: load_model works on deep copies of it.
    Building runs e3nn's einsum optimisation (about 1 s for the density study's models) where a copy takes
    about 0.01 s, so a committee, or a script that loads many runs of one architecture, builds it once. The
    weights it was built with are replaced by load_state_dict (strict) in every copy."""
    return build_model(json.loads(config_json))


def initialise_from(model: HQCPotential, source: str | Path, map_location="cpu") -> list[str]:
    """Copy the weights (and reference energies) of ``source`` (run directory: its best model; or a .pt file)
    into ``model``, which must have the same architecture. Returns the state keys that ``model`` must still
    rebuild: noisy readouts' coefficients when the source has none for the same noise (HQCError naming the
    file for anything else missing, unexpected or of another shape)."""
    path, payload = read_model_payload(source, "best", map_location)
    state = dict(payload["model_state"])
    source_readout = payload["model_config"].get("readout", {})
    target_readout = model.config.readout.model_dump()
    same_noise = all(source_readout.get(k) == target_readout.get(k) for k in ("engine", "noise_backend", "noise_scale"))
    if not same_noise:   # coefficients simulated for other noise (or none): never reuse them
        state = {k: v for k, v in state.items() if not k.endswith(STATE_SUFFIXES)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise HQCError(f"{path}: its weights do not fit this model (init_from needs the same architecture): "
                       f"{lines[min(1, len(lines) - 1)][:300]}") from None
    rebuilt = [k for k in missing if k.endswith(STATE_SUFFIXES)]
    others = [k for k in missing if k not in rebuilt] + list(unexpected)
    if others:
        raise HQCError(f"{path}: its weights do not fit this model (init_from needs the same architecture): "
                       f"{'missing' if set(others) & set(missing) else 'unexpected'} {others[0]!r}"
                       f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}")
    return rebuilt
