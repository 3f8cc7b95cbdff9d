"""Where a result was computed: package versions and hardware, for ``--version`` and run summaries."""

from __future__ import annotations

import os
import platform

# the packages whose versions decide results
VERSIONED = ("hqc-qiskit", "torch", "e3nn", "qiskit", "qiskit-aer", "qiskit-machine-learning", "qiskit-ibm-runtime",
             "mitiq", "ase", "numpy")


def package_versions() -> dict[str, str | None]:
    """{package: installed version, or None where it is not installed}."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def hardware(device: str = "cpu") -> dict:
    """CPU model and count, torch threads, and the GPU's name when ``device`` is CUDA."""
    import torch

    info = {"machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def cpu_model() -> str:
    """The CPU's model name ('/proc/cpuinfo' on Linux; platform.processor() elsewhere, often less specific)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
