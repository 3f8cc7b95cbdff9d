"""Qiskit EstimatorQNN + TorchConnector built from the same circuits: the reference engine.

Exact (no sampling noise: ``default_precision=0`` on the StatevectorEstimator and the QNN) unless
another estimator is passed. Slow (~1000x the exact engine) and only once differentiable, so it
cannot train on forces; :class:`QNNCircuit` says so instead of failing silently.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from qiskit.primitives import StatevectorEstimator
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN
from torch import nn

from ..errors import EngineError
from .circuits import ansatz, z_observables


def build_estimator_qnn(name: str, n_qubits: int = 8, n_layers: int = 3, estimator=None, input_gradients: bool = True) -> EstimatorQNN:
    """EstimatorQNN for ansatz ``name``: inputs x (n_qubits), weights w ([layer][qubit]), outputs <Z_q>."""
    qc, x, w = ansatz(name, n_qubits, n_layers)
    estimator = estimator if estimator is not None else StatevectorEstimator(default_precision=0.0)
    return EstimatorQNN(
        circuit=qc,
        estimator=estimator,
        observables=z_observables(n_qubits, qc.num_qubits),
        input_params=list(x),
        weight_params=list(w),
        input_gradients=input_gradients,
        default_precision=0.0,
    )


class _NoDoubleBackward(torch.autograd.Function):
    """Identity whose backward is itself not differentiable, with a clear message if that is tried."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled() and grad.requires_grad:
            raise EngineError(
                "the 'qnn' readout engine (Qiskit EstimatorQNN + TorchConnector) cannot give second "
                "derivatives, which force training needs; use 'engine: exact' (numerically identical), "
                "or train on energies only (train.forces_weight: 0)"
            )
        return grad


class QNNCircuit(nn.Module):
    """Trainable readout circuit through Qiskit primitives; maps (B, n_qubits) -> (B, n_qubits)."""

    supports_double_backward = False

    def __init__(self, name: str, n_qubits: int = 8, n_layers: int = 3, initial_weights: torch.Tensor | None = None, estimator=None):
        super().__init__()
        self.name, self.n_qubits, self.n_layers = name, n_qubits, n_layers
        if initial_weights is None:
            initial_weights = torch.rand(n_layers, n_qubits) * 2 * math.pi
        self.qnn = build_estimator_qnn(name, n_qubits, n_layers, estimator)
        self.connector = TorchConnector(self.qnn, initial_weights=np.asarray(initial_weights, dtype=float).reshape(-1))

    @property
    def weight(self) -> torch.Tensor:
        """Weights as (n_layers, n_qubits), the same layout as the exact engine (a view)."""
        return self.connector.weight.view(self.n_layers, self.n_qubits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.connector(x)
        return _NoDoubleBackward.apply(out).to(x.dtype)
