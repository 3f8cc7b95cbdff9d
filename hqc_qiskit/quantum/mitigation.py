"""Error mitigation for the noisy simulators: mitiq zero-noise extrapolation and readout-error mitigation.

* ZNE: unitary folding U (U^dagger U)^k of the *transpiled* circuit (odd scale factors 1, 3, 5, ...),
  done here in Qiskit so that no later pass can cancel it and native gates stay native (mitiq's own
  folding converts through Cirq/QASM 2, which decomposes ECR into CX and U3, so it would not fold the
  circuit the device runs). ``sxdg`` in the inverse is written as rz(pi) sx rz(pi), which a device
  runs with the noise of one sx. Extrapolation to zero noise uses mitiq's Richardson or linear
  factory; because both are linear in the data, the standard error propagates exactly.
* REM: per-qubit confusion matrices calibrated by preparing |0...0> and |1...1> on the output qubits
  of the same noisy circuit register; inverted with mitiq's tensored inverse confusion matrix.

Dynamical decoupling is a transpile-profile option (``dynamical_decoupling: XX``), as on hardware:
Qiskit's timing-aware pass fills the scheduled idle windows; mitiq's DDD would convert the circuit via
OpenQASM 2 to Cirq, which knows neither ``ecr`` nor ``delay`` (docs/hardware.md).
On IBM Runtime backends the runtime's own resilience options are used instead (see backends.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from mitiq.rem import generate_tensored_inverse_confusion_matrix
from mitiq.zne.inference import LinearFactory, RichardsonFactory
from qiskit import QuantumCircuit
from qiskit.circuit.library import RZGate, SXGate

from ..errors import ConfigError

FACTORIES = {"richardson": RichardsonFactory, "linear": LinearFactory}
ZNE_SHOT_SPLITS = ("uniform", "optimal")


@dataclass(frozen=True)
class MitigationOptions:
    """What to mitigate: ``zne_scale_factors`` (odd integers, () = off), ``zne_method``, ``rem``;
    ``zne_shots``: how a circuit's shots are split over its folds (see ``zne_shot_split``)."""

    zne_scale_factors: tuple[int, ...] = ()
    zne_method: str = "richardson"
    rem: bool = False
    rem_shots: int = 20000
    zne_shots: str = "uniform"

    def __post_init__(self):
        if self.zne_shots not in ZNE_SHOT_SPLITS:
            raise ConfigError(f"unknown ZNE shot split {self.zne_shots!r}; choose one of {list(ZNE_SHOT_SPLITS)}")
        if self.zne_method not in FACTORIES:
            raise ConfigError(f"unknown ZNE method {self.zne_method!r}; choose one of {list(FACTORIES)}")
        for s in self.zne_scale_factors:
            if int(s) != s or s < 1 or s % 2 == 0:
                raise ConfigError(f"ZNE scale factors must be odd integers >= 1 (global folding), got {s}")
        if self.zne_scale_factors and len(set(self.zne_scale_factors)) < 2:
            raise ConfigError("ZNE needs at least two different scale factors, e.g. 1,3,5")

    @classmethod
    def parse(cls, names: str | None) -> "MitigationOptions":
        """From a CLI string: 'none', 'rem', 'zne', 'zne+rem', 'zne-linear', 'zne:1,3' ..."""
        if not names or names == "none":
            return cls()
        kwargs: dict = {}
        for item in names.split("+"):
            if item == "rem":
                kwargs["rem"] = True
            elif item.startswith("zne"):
                head, _, factors = item.partition(":")
                kwargs["zne_scale_factors"] = tuple(int(f) for f in factors.split(",")) if factors else (1, 3, 5)
                if head == "zne-linear":
                    kwargs["zne_method"] = "linear"
            else:
                raise ConfigError(f"unknown mitigation {item!r}; use none, rem, zne[:1,3,5], zne-linear, or a '+' combination")
        return cls(**kwargs)

    @property
    def label(self) -> str:
        parts = []
        if self.zne_scale_factors:
            parts.append(f"zne-{self.zne_method}({','.join(map(str, self.zne_scale_factors))})")
        if self.rem:
            parts.append("rem")
        return "+".join(parts) or "none"


def _native_inverse(circuit: QuantumCircuit) -> QuantumCircuit:
    inverse = circuit.inverse()
    out = QuantumCircuit(*inverse.qregs, global_phase=inverse.global_phase)
    for inst in inverse.data:
        if inst.operation.name == "sxdg":   # = rz(pi) sx rz(pi) up to a global phase
            out.append(RZGate(math.pi), inst.qubits)
            out.append(SXGate(), inst.qubits)
            out.append(RZGate(math.pi), inst.qubits)
        else:
            out.append(inst.operation, inst.qubits)
    return out


def fold_global(circuit: QuantumCircuit, scale_factor: int) -> QuantumCircuit:
    """U (U^dagger U)^k with k = (scale_factor - 1) / 2, in the circuit's native gates; parameters kept."""
    if scale_factor < 1 or scale_factor % 2 == 0:
        raise ConfigError(f"global folding needs an odd integer scale factor, got {scale_factor}")
    inverse = _native_inverse(circuit)
    folded = circuit.copy()
    for _ in range((scale_factor - 1) // 2):
        folded.compose(inverse, inplace=True)
        folded.compose(circuit, inplace=True)
    return folded


def extrapolation_weights(scale_factors: tuple[int, ...], method: str) -> np.ndarray:
    """gamma with zero-noise value = sum_i gamma_i * value_i (mitiq's factories are linear in the values)."""
    factory = FACTORIES[method]
    n = len(scale_factors)
    return np.array([factory.extrapolate(list(map(float, scale_factors)), list(np.eye(n)[i])) for i in range(n)])


def zne_shot_split(shots: np.ndarray, weights: np.ndarray, split: str = "uniform") -> np.ndarray:
    """Shots (F, K) of the F folds of each circuit, for circuits of ``shots`` (K,) shots each (inf: exact).

    The extrapolated value sum_j gamma_j <Z>_j has variance sum_j gamma_j^2 sigma_j^2 / n_j. "uniform"
    runs every fold with the circuit's shots (mitiq's executors do the same), F x shots in all; "optimal"
    splits that same total in proportion to |gamma_j| (at least one shot per fold), the Neyman split,
    which minimizes the variance when the folds' per-shot variances sigma_j^2 are equal: for Richardson
    on 1, 3, 5 it is (sum |gamma|)^2 / (F sum gamma^2) = 0.78 of the uniform split's at the same total
    (folding mixes the state, so sigma_j grows a little with j and the gain is a little smaller)."""
    shots = np.asarray(shots, dtype=float)
    f = len(weights)
    if split == "uniform" or not np.all(np.isfinite(shots)):
        return np.broadcast_to(shots, (f, len(shots))).copy()
    share = np.abs(weights) / np.abs(weights).sum()
    total = np.round(shots).astype(np.int64) * f
    out = np.maximum(1, np.floor(share[:, None] * total[None, :])).astype(np.int64)
    out[0] += total - out.sum(axis=0)   # the rounding remainder to the unfolded circuit (largest |gamma|)
    return out.astype(float)


def inverse_confusion(confusions: list[np.ndarray]) -> np.ndarray:
    """Tensored inverse (2^n, 2^n) acting on distributions indexed with bit q = output q.

    ``confusions[q]`` is [prepared, measured] for output q. mitiq orders bitstrings most significant
    bit first and its confusion matrices as [measured, prepared]; both are converted here."""
    mitiq_order = [np.asarray(c).T for c in reversed(confusions)]
    return np.asarray(generate_tensored_inverse_confusion_matrix(len(confusions), mitiq_order))


def calibrate_confusion(counts_zero: np.ndarray, counts_one: np.ndarray, n: int) -> list[np.ndarray]:
    """Per-output confusion matrices [prepared, measured] from counts (2^n,) after preparing all-0 and all-1."""
    out = []
    for q in range(n):
        bit = (np.arange(2**n) >> q) & 1
        p1_given0 = counts_zero[bit == 1].sum() / counts_zero.sum()
        p0_given1 = counts_one[bit == 0].sum() / counts_one.sum()
        out.append(np.array([[1 - p1_given0, p1_given0], [p0_given1, 1 - p0_given1]]))
    return out
