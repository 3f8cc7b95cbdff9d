"""The readout ansaetze as parameterized Qiskit circuits: the single source of truth (DESIGN section 2).

Every engine (exact torch engine, EstimatorQNN, shot-based primitives) is derived from
:func:`ansatz`. To add an ansatz, register an entangler here; nothing else needs to change.

Circuit: RY(x_q) embedding on qubits 0..n_qubits-1 from |0...0>; [QFT on ancillas]; then for each
layer l: RX(w[l, q]) on every input qubit q, then the entangler. Outputs <Z_q>, q < n_qubits
(Qiskit little-endian: qubit q is bit q of a basis-state index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import QFTGate
from qiskit.quantum_info import SparsePauliOp


@dataclass(frozen=True)
class AnsatzSpec:
    """How an ansatz is built: its entangler and how many extra (ancilla) qubits it uses."""

    entangler: Callable[[QuantumCircuit, int], None]  # (circuit, total qubits) -> appends gates
    n_ancillas: int = 0
    qft_on_ancillas: bool = False
    description: str = ""


def _no_entangler(qc: QuantumCircuit, n_total: int) -> None:
    return None


def _ring(gate: str) -> Callable[[QuantumCircuit, int], None]:
    def entangle(qc: QuantumCircuit, n_total: int) -> None:
        for q in range(n_total):
            getattr(qc, gate)(q, (q + 1) % n_total)

    return entangle


def _chain(gate: str) -> Callable[[QuantumCircuit, int], None]:
    def entangle(qc: QuantumCircuit, n_total: int) -> None:
        for q in range(n_total - 1):
            getattr(qc, gate)(q, q + 1)

    return entangle


#: name -> spec; the registry configs and the CLI choose ansaetze from
ANSAETZE: dict[str, AnsatzSpec] = {
    "basic": AnsatzSpec(_no_entangler, description="RX layers, no entangler"),
    "cx": AnsatzSpec(_ring("cx"), description="RX layers + CNOT ring"),
    "cz": AnsatzSpec(_ring("cz"), description="RX layers + CZ ring"),
    "qft_cx": AnsatzSpec(_chain("cx"), n_ancillas=3, qft_on_ancillas=True, description="+3 QFT ancillas, CNOT chain"),
    "qft_cz": AnsatzSpec(_chain("cz"), n_ancillas=3, qft_on_ancillas=True, description="+3 QFT ancillas, CZ chain"),
}


def ansatz_names() -> list[str]:
    return list(ANSAETZE)


def get_spec(name: str) -> AnsatzSpec:
    try:
        return ANSAETZE[name]
    except KeyError:
        raise ValueError(f"unknown ansatz {name!r}; choose one of {ansatz_names()}") from None


def ansatz(name: str, n_qubits: int = 8, n_layers: int = 3) -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """Build ansatz ``name``: returns (circuit, inputs x[n_qubits], weights w[n_layers * n_qubits]).

    Weights are flattened in order [layer][qubit]: w[l * n_qubits + q] is the RX angle of layer l on
    qubit q. Bind parameters by these vectors, never by ``circuit.parameters`` order (sorted by name).
    """
    spec = get_spec(name)
    if n_qubits < 1 or n_layers < 0:
        raise ValueError(f"need n_qubits >= 1 and n_layers >= 0, got {n_qubits}, {n_layers}")
    n_total = n_qubits + spec.n_ancillas
    x = ParameterVector("x", n_qubits)
    w = ParameterVector("w", n_layers * n_qubits)
    qc = QuantumCircuit(n_total, name=f"hqc_{name}")
    for q in range(n_qubits):
        qc.ry(x[q], q)
    if spec.qft_on_ancillas:
        qc.append(QFTGate(spec.n_ancillas), list(range(n_qubits, n_total)))
    for layer in range(n_layers):
        for q in range(n_qubits):
            qc.rx(w[layer * n_qubits + q], q)
        spec.entangler(qc, n_total)
    return qc, x, w


def z_observables(n_qubits: int, n_total: int | None = None) -> list[SparsePauliOp]:
    """The single-qubit observables Z_q, q = 0..n_qubits-1, on a register of ``n_total`` qubits."""
    n_total = n_qubits if n_total is None else n_total
    return [SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits=n_total) for q in range(n_qubits)]
