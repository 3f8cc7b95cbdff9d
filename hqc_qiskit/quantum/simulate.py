"""Fast (noisy) simulation of transpiled readouts on their active qubits only, batched over parameter sets.

Why this exists: simulating the full 127-qubit device with Aer is far too slow for 320 circuits per
structure. The reduced circuit (active qubits) with the reduced noise model is the same physics.
Each circuit's exact output distribution over the measured qubits is computed (noisy: by the
batched density-matrix engine of :mod:`.density`, all parameter sets at once, or by Aer's
density-matrix method with ``engine="aer"``; noiseless: Aer's statevector); the readout confusion is
applied to that distribution, and shots are drawn from it by a multinomial, which is what sampling
does. Equality with Aer, with qiskit's exact density-matrix evolution, with Aer's own shot sampling
and with the full-device simulation is tested.

Idle relaxation (device noise on scheduled circuits) is written into the circuit once, as one Kraus
instruction per delay (:func:`explicit_idle_relaxation`), instead of leaving it to Aer's noise pass at
every run: the same channels (tested to 1e-12), in a form both engines simulate directly (Aer's
density-matrix fusion does not merge the pass's own instructions, which made Aer 2x slower).
"""

from __future__ import annotations

import copy

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import DensityMatrix, Kraus
from qiskit.transpiler import PassManager
from qiskit_aer import AerSimulator

from ..errors import ConfigError
from .density import BatchedDensityMatrix
from .noise import ReducedNoise
from .transpile import TranspiledReadout


def z_signs(n_outputs: int) -> np.ndarray:
    """(2^n, n): the value of Z_q (+1 for bit 0, -1 for bit 1) on each outcome index (bit q = output q)."""
    bits = (np.arange(2**n_outputs)[:, None] >> np.arange(n_outputs)[None, :]) & 1
    return 1.0 - 2.0 * bits


def apply_readout(probs: np.ndarray, confusion: list[np.ndarray]) -> np.ndarray:
    """Push distributions (K, 2^n) through per-bit readout confusion matrices [prepared, measured] (bit q = axis)."""
    n = len(confusion)
    k = probs.shape[0]
    t = probs.reshape([k] + [2] * n)          # axis 1 + a is bit n-1-a
    for q, m in enumerate(confusion):
        axis = 1 + (n - 1 - q)
        t = np.moveaxis(np.tensordot(t, m, axes=([axis], [0])), -1, axis)
    return t.reshape(k, -1)


def sample_counts(probs: np.ndarray, shots: np.ndarray | int, rng: np.random.Generator) -> np.ndarray:
    """Counts (K, 2^n) of ``shots`` (int or (K,)) shots drawn from each distribution row of ``probs`` (K, 2^n)."""
    shots = np.broadcast_to(np.asarray(shots, dtype=np.int64), (probs.shape[0],))
    return np.stack([rng.multinomial(s, p) for s, p in zip(shots, probs)])


def _fixes_ground_state(channel: Kraus) -> bool:
    ground = DensityMatrix.from_label("0" * channel.num_qubits)
    return bool(np.allclose(ground.evolve(channel).data, ground.data, atol=1e-15))


def explicit_idle_relaxation(circuit: QuantumCircuit, noise: ReducedNoise) -> QuantumCircuit:
    """``circuit`` with each delay replaced by its thermal-relaxation channel (``noise.idle``, the channel
    Aer's RelaxationNoisePass appends to it) as a Kraus instruction. Channels before a qubit's first
    operation are dropped when they leave |0> unchanged (relaxation without thermal excitation):
    every circuit starts in |0>. Circuits without delays, or noise without idle relaxation, come back unchanged."""
    if noise.idle is None or "delay" not in circuit.count_ops():
        return circuit
    relaxed = PassManager([noise.idle]).run(circuit)
    out = circuit.copy_empty_like()
    started: set[int] = set()
    for inst in relaxed.data:
        name, qubits = inst.operation.name, [relaxed.find_bit(q).index for q in inst.qubits]
        if name == "quantum_channel":
            channel = Kraus(inst.operation)
            if started.intersection(qubits) or not _fixes_ground_state(channel):
                out.append(channel, qubits)
        elif name != "delay":
            started.update(qubits)
            out.append(inst.operation, qubits)
    return out


SIMULATION_ENGINES = ("batched", "aer")


def check_engine(engine: str) -> None:
    """Refuse an unknown noisy-simulation engine name (before any work is done)."""
    if engine not in SIMULATION_ENGINES:
        raise ConfigError(f"unknown simulation engine {engine!r}; use {' or '.join(map(repr, SIMULATION_ENGINES))}")


class ReducedSimulator:
    """Output distributions and shots of one transpiled readout under one reduced noise model.

    ``engine``: ``"batched"`` (default; :class:`.density.BatchedDensityMatrix`) or ``"aer"`` (Aer's
    density-matrix method, one experiment per parameter set) for noisy circuits; noiseless circuits always
    use Aer's statevector. ``precision``: ``"double"`` or ``"single"``, for either engine."""

    def __init__(self, tr: TranspiledReadout, noise: ReducedNoise | None = None, precision: str = "double",
                 engine: str = "batched"):
        check_engine(engine)
        self.tr = tr
        self.noise = noise if noise is not None else ReducedNoise(None, {})
        noisy = self.noise.model is not None
        self.engine, self.precision = (engine if noisy else "aer"), precision
        self.circuit = self._measured(tr.reduced)
        self.simulator = AerSimulator(method="density_matrix" if noisy else "statevector",
                                      noise_model=self.noise.model, precision=precision,
                                      max_parallel_experiments=0)
        self.confusion = [self.noise.readout.get(q, np.eye(2)) for q in tr.reduced_outputs]
        self._compiled: dict[int, tuple[QuantumCircuit, BatchedDensityMatrix]] = {}

    def distributions(self, params: np.ndarray, circuit: QuantumCircuit | None = None) -> np.ndarray:
        """Exact measured-outcome distributions (K, 2^n_out) for parameter rows ``params`` (K, P) of the
        reduced circuit (see ``TranspiledReadout.parameter_values``), readout error included."""
        circuit = self.circuit if circuit is None else circuit
        params = np.atleast_2d(params)
        if self.engine == "batched":
            probs = self._batched(circuit).probabilities(params)
        else:
            probs = self._aer(circuit, params)
        probs = np.clip(probs, 0.0, None)
        probs /= probs.sum(axis=1, keepdims=True)
        return apply_readout(probs, self.confusion)

    def _batched(self, circuit: QuantumCircuit) -> BatchedDensityMatrix:
        """The circuit compiled with this noise model, once per circuit object."""
        if id(circuit) not in self._compiled:
            self._compiled[id(circuit)] = (circuit, BatchedDensityMatrix(circuit, self.noise.model, self.precision))
        return self._compiled[id(circuit)][1]

    def _aer(self, circuit: QuantumCircuit, params: np.ndarray) -> np.ndarray:
        if circuit.num_parameters:
            binds = [{p: params[:, i] for i, p in enumerate(circuit.parameters)}]
            result = self.simulator.run([circuit], parameter_binds=binds, shots=1).result()
        else:
            result = self.simulator.run([circuit] * params.shape[0], shots=1).result()
        return np.stack([np.asarray(result.data(i)["probs"], dtype=float) for i in range(params.shape[0])])

    def with_circuit(self, reduced: QuantumCircuit) -> "ReducedSimulator":
        """Same noise, engine and outputs, a different reduced circuit on the same register (e.g. folded for ZNE)."""
        other = copy.copy(self)
        other.circuit, other._compiled = other._measured(reduced), {}
        return other

    def _measured(self, reduced: QuantumCircuit) -> QuantumCircuit:
        """A reduced circuit as simulated: idle relaxation written in, probabilities of the outputs saved."""
        circuit = explicit_idle_relaxation(reduced, self.noise).copy()
        circuit.save_probabilities(qubits=self.tr.reduced_outputs, label="probs")
        return circuit
