"""hqc-qiskit: hybrid quantum-classical machine-learning interatomic potentials.

Classical E(3)-equivariant message passing (torch + e3nn) with per-layer readouts that are
either classical MLPs or variational quantum circuits defined once in Qiskit
(:mod:`hqc_qiskit.quantum.circuits`) and executed by interchangeable engines.
"""

__version__ = "0.1.0"
