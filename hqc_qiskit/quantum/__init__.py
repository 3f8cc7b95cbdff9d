"""Quantum readouts: circuits (single source of truth) and the engines derived from them."""

from __future__ import annotations

ENGINES = ("exact", "qnn")


def make_circuit_module(engine: str, ansatz: str, n_qubits: int = 8, n_layers: int = 3, initial_weights=None):
    """Registry: engine name -> trainable circuit module mapping (B, n_qubits) angles to (B, n_qubits) <Z>."""
    if engine == "exact":
        from .exact import ExactCircuit

        return ExactCircuit(ansatz, n_qubits, n_layers, initial_weights)
    if engine == "qnn":
        from .qnn import QNNCircuit

        return QNNCircuit(ansatz, n_qubits, n_layers, initial_weights)
    raise ValueError(f"unknown readout engine {engine!r}; choose one of {list(ENGINES)}")
