"""Atomic checkpoint files and rebuilding a model from a checkpoint or run directory alone."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import HQCError
from .model.potential import HQCPotential, build_model

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


def atomic_write_json(obj, path: str | Path) -> None:
    """JSON to a temporary file in the same folder, then rename (same guarantee as :func:`atomic_save`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def model_payload(model: HQCPotential) -> dict:
    """What rebuilds a model: its config (hyperparameters) and weights."""
    return {"model_config": model.config.model_dump(mode="json"), "model_state": model.state_dict()}


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


def load_model(path: str | Path, which: str = "best", map_location="cpu") -> HQCPotential:
    """Model from a checkpoint file, or from a run directory (``which``: 'best' or 'last'), for inference:
    in eval mode with frozen parameters (forces still work; the exact quantum readouts then build their
    circuit unitary once instead of per call). Call ``model.requires_grad_(True)`` to train it further."""
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
    if "model_config" not in payload:
        raise HQCError(f"{path}: not an hqc-qiskit checkpoint (no model_config)")
    config = dict(payload["model_config"])
    if config.get("tensor_product") == "split":
        # checkpoints written before 'grouped' existed: same numbers (tests/test_physics.py), faster
        config["tensor_product"] = "grouped"
    model = build_model(config)
    model.load_state_dict(payload["model_state"])
    return model.eval().requires_grad_(False)
