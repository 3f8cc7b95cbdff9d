"""Quantum readouts: circuits (single source of truth) and the engines derived from them."""

from __future__ import annotations

ENGINES = ("exact", "qnn", "noisy")


def make_circuit_module(engine: str, ansatz: str, n_qubits: int = 8, n_layers: int = 3, initial_weights=None,
                        noise_backend: str | None = None, noise_scale: float = 1.0, train_weights: bool = False):
    """Registry: engine name -> circuit module mapping (B, n_qubits) angles to (B, n_qubits) <Z>. ``exact`` and
    ``qnn`` train the circuit weights; ``noisy`` (the device's noisy expectation values on ``noise_backend``
    at ``noise_scale``) keeps them fixed unless ``train_weights``."""
    if engine == "exact":
        from .exact import ExactCircuit

        return ExactCircuit(ansatz, n_qubits, n_layers, initial_weights)
    if engine == "qnn":
        from .qnn import QNNCircuit

        return QNNCircuit(ansatz, n_qubits, n_layers, initial_weights)
    if engine == "noisy":
        from .noisy_readout import NoisyCircuit

        return NoisyCircuit(ansatz, n_qubits, n_layers, initial_weights, noise_backend, noise_scale, train_weights)
    raise ValueError(f"unknown readout engine {engine!r}; choose one of {list(ENGINES)}")
