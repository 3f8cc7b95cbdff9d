"""Torch device names ('auto', 'cpu', 'cuda', 'cuda:1') -> torch.device, with errors that say what is missing;
the CPU's handling of subnormal floats."""

from __future__ import annotations

import numpy as np
import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU; others must exist here (ConfigError otherwise)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "torch sees no GPU"
            raise ConfigError(f"device {name!r}: {why} (torch {torch.__version__}); use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available here; use cpu or auto")
    return device


def flush_denormals() -> bool:
    """Make this process's CPU arithmetic treat subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) as
    zero (FTZ/DAZ), for the calling thread and the threads it starts from now on (torch's intra-op threads included
    when they start later); returns whether the CPU supports it.

    Why (session 44): after a few epochs the paper CMLP's training step produced subnormals in its backward pass
    and took 2.5x as long (benchmarks/denormals.py); x86 CPUs compute with them in microcode. Flushing them changes
    only values below those bounds, far under the float32 resolution of any energy, force or gradient here."""
    # numpy works out its float limits once, on first use; under FTZ that prints warnings, so do it before
    np.finfo(np.float32), np.finfo(np.float64)
    return torch.set_flush_denormal(True)
