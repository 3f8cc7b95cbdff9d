"""Steps of a compiled readout circuit: the gates the exact engine applies, as plain data.

Shared by the compiler passes (``exact.py``, ``ancillas.py``) so that each pass sees the same gate
conventions: a step's matrix is Qiskit-ordered (bit j of a row or column index = qubit qubits[j]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _rx(theta):
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    z = torch.zeros_like(c)
    return torch.stack([torch.complex(c, z), torch.complex(z, -s), torch.complex(z, -s), torch.complex(c, z)]).reshape(2, 2)


def _ry(theta):
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    z = torch.zeros_like(c)
    return torch.stack([torch.complex(c, z), torch.complex(-s, z), torch.complex(s, z), torch.complex(c, z)]).reshape(2, 2)


def _rz(theta):
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    z = torch.zeros_like(c)
    return torch.stack([torch.complex(c, -s), torch.complex(z, z), torch.complex(z, z), torch.complex(c, s)]).reshape(2, 2)


def _phase(theta):
    z, o = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([torch.complex(o, z), torch.complex(z, z), torch.complex(z, z), torch.complex(torch.cos(theta), torch.sin(theta))]).reshape(2, 2)


#: torch matrices of the single-angle gates a weight may drive (Qiskit's conventions; tested against Operator)
PARAMETRIC_GATES = {"rx": _rx, "ry": _ry, "rz": _rz, "p": _phase}


@dataclass
class Step:
    qubits: tuple[int, ...]
    matrix: np.ndarray | None = None  # constant gate (2^k, 2^k) complex
    gate: str | None = None           # parametric gate name
    weight_index: int = -1            # angle = coeff * w[weight_index] + offset
    coeff: float = 1.0
    offset: float = 0.0
    source: np.ndarray | None = None  # monomial constant: out[i] = phase[i] * in[source[i]] over these qubits
    phase: np.ndarray | None = None


@dataclass
class Branch:
    """One term of the output distribution: probability weight and the steps of its U_b(w)."""

    probability: float
    steps: list[Step]


def step_matrix(step: Step) -> np.ndarray:
    """The step's gate matrix; a parametric gate at a generic angle (1 rad: commutation with Z at one
    generic angle implies it at every angle for the rotation and phase gates)."""
    if step.matrix is not None:
        return step.matrix
    return PARAMETRIC_GATES[step.gate](torch.tensor(1.0, dtype=torch.float64)).numpy()


def commutes_with_z(step: Step, qubit: int, atol: float) -> bool:
    """True when the step commutes with Z on ``qubit`` (one of its qubits): its matrix never flips that
    qubit, i.e. every entry between basis states that differ in that bit is below ``atol``."""
    g = step_matrix(step)
    bit = (np.arange(len(g)) >> step.qubits.index(qubit)) & 1   # Qiskit order: the gate's qubit j is bit j
    return bool(np.all(np.abs(g[bit[:, None] != bit[None, :]]) < atol))
