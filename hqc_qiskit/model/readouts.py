"""Per-layer readouts: node scalars (N, n_scalars) -> per-atom energy contribution (N,) in eV.

Registry ``READOUTS`` maps the config's ``readout.kind`` to a class; each is built from
(n_scalars, readout config) and declares whether it supports second derivatives.
"""

from __future__ import annotations

import torch
from torch import nn

from ..quantum import make_circuit_module


class ClassicalReadout(nn.Module):
    """Linear -> hidden scalars -> SiLU -> Linear(+bias) -> 1 (the paper's CMLP readout)."""

    supports_double_backward = True

    def __init__(self, n_scalars: int, hidden: int = 32, **_):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_scalars, hidden, bias=False), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, scalars: torch.Tensor) -> torch.Tensor:  # (N, n_scalars) -> (N,)
        return self.net(scalars).squeeze(-1)


class QuantumReadout(nn.Module):
    """Linear -> n_qubits angles -> VQC -> n_qubits <Z_q> -> Linear(+bias) -> 1 (the paper's HQC readout)."""

    def __init__(self, n_scalars: int, ansatz: str = "cz", engine: str = "exact", n_qubits: int = 8, n_layers: int = 3,
                 angle_scale: float = 1.0, noise_backend: str | None = None, noise_scale: float = 1.0,
                 train_circuit_weights: bool = False, **_):
        super().__init__()
        self.angle_scale = angle_scale  # fixed factor on the embedding angles (1.0 = the paper's readout)
        self.encode = nn.Linear(n_scalars, n_qubits, bias=False)
        noise = ({"noise_backend": noise_backend, "noise_scale": noise_scale, "train_weights": train_circuit_weights}
                 if engine == "noisy" else {})
        self.circuit = make_circuit_module(engine, ansatz, n_qubits, n_layers, **noise)
        self.decode = nn.Linear(n_qubits, 1)
        self.supports_double_backward = self.circuit.supports_double_backward

    def forward(self, scalars: torch.Tensor) -> torch.Tensor:  # (N, n_scalars) -> (N,)
        angles = self.angle_scale * self.encode(scalars)
        # the circuit is simulated in the parameters' precision even under torch.autocast: its complex
        # amplitudes have no half-precision kernels, and rotation angles lose too much in bfloat16
        with torch.autocast(angles.device.type, enabled=False):
            z = self.circuit(angles.to(self.decode.weight.dtype))
        return self.decode(z).squeeze(-1)


READOUTS = {"classical": ClassicalReadout, "quantum": QuantumReadout}


def make_readout(kind: str, n_scalars: int, **options) -> nn.Module:
    try:
        cls = READOUTS[kind]
    except KeyError:
        raise ValueError(f"unknown readout kind {kind!r}; choose one of {list(READOUTS)}") from None
    return cls(n_scalars, **options)
