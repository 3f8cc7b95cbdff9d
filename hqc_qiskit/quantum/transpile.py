"""Compile a readout ansatz for a device (transpile profile) and reduce it to the qubits it touches.

A transpiled readout touches a handful of a 127- or 156-qubit device's qubits; :class:`TranspiledReadout`
keeps both the full-device ISA circuit (what IBM hardware runs) and the same circuit relabelled on
its active qubits only (what the fast noisy simulator runs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import XGate
from qiskit.transpiler import CouplingMap, PassManager, Target
from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay, PadDynamicalDecoupling
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager
from qiskit.utils.units import apply_prefix

from .circuits import ansatz
from .devices import compact_region, fake_backend, reduced_target, relaxation_times
from .snapshots import device_target
from .profiles import TranspileProfile, load_profile

_IGNORED = ("barrier", "delay")  # do not make a qubit "active" on their own


@dataclass
class TranspiledReadout:
    """One ansatz compiled with one profile. Qubit numbers in ``output_qubits``/``active_qubits`` are physical."""

    ansatz: str
    profile: TranspileProfile
    logical: QuantumCircuit
    inputs: ParameterVector
    weights: ParameterVector
    isa: QuantumCircuit                 # full-device circuit, no measurements
    output_qubits: list[int]            # physical qubit holding logical output q at the end
    active_qubits: list[int]            # sorted physical qubits touched by a gate
    swaps: int                          # SWAPs inserted by routing
    target: Target | None = field(repr=False, default=None)

    @property
    def n_outputs(self) -> int:
        return len(self.output_qubits)

    @functools.cached_property
    def reduced(self) -> QuantumCircuit:
        """The ISA circuit on ``len(active_qubits)`` qubits (reduced qubit i = physical active_qubits[i])."""
        index = {p: i for i, p in enumerate(self.active_qubits)}
        out = QuantumCircuit(len(self.active_qubits), name=f"{self.isa.name}_reduced")
        for inst in self.isa.data:
            qubits = [self.isa.find_bit(q).index for q in inst.qubits]
            if all(q in index for q in qubits):
                out.append(inst.operation, [index[q] for q in qubits])
        return out

    @property
    def reduced_outputs(self) -> list[int]:
        index = {p: i for i, p in enumerate(self.active_qubits)}
        return [index[p] for p in self.output_qubits]

    def parameter_values(self, x: np.ndarray, w: np.ndarray, circuit: QuantumCircuit | None = None) -> np.ndarray:
        """Parameter array (K, P) in ``circuit.parameters`` order from inputs x (K, n_in) and weights w (K, n_w) or (n_w,)."""
        circuit = self.isa if circuit is None else circuit
        x = np.atleast_2d(np.asarray(x, dtype=float))
        w = np.broadcast_to(np.atleast_2d(np.asarray(w, dtype=float)), (x.shape[0], len(self.weights)))
        source = {p: x[:, k] for k, p in enumerate(self.inputs)} | {p: w[:, k] for k, p in enumerate(self.weights)}
        return np.stack([source[p] for p in circuit.parameters], axis=1) if circuit.num_parameters else np.zeros((x.shape[0], 0))

    def metrics(self) -> dict:
        """Two-qubit gate count, depth, two-qubit depth, SWAPs, qubits used, estimated success probability."""
        two_q = sum(1 for inst in self.isa.data if inst.operation.num_qubits == 2 and inst.operation.name not in _IGNORED)
        return {
            "ansatz": self.ansatz,
            "profile": self.profile.name,
            "two_qubit_gates": two_q,
            "depth": self.isa.depth(lambda inst: inst.operation.name not in _IGNORED),
            "two_qubit_depth": self.isa.depth(lambda inst: inst.operation.num_qubits == 2 and inst.operation.name not in _IGNORED),
            "swaps": self.swaps,
            "qubits_used": len(self.active_qubits),
            "success_probability": self.success_probability(),
            "idle_fidelity": self.idle_fidelity(),
        }

    def success_probability(self) -> float | None:
        """Product of (1 - error) over every gate and output measurement, from the target's calibration,
        times :meth:`idle_fidelity`. None where the target has no calibrated errors (ideal and custom targets)."""
        if self.target is None:
            return None
        p = 1.0
        for inst in self.isa.data:
            name = inst.operation.name
            if name in _IGNORED:
                continue
            qargs = tuple(self.isa.find_bit(q).index for q in inst.qubits)
            props = self.target[name].get(qargs) if name in self.target else None
            if props is not None and props.error is not None:
                p *= 1.0 - props.error
        for q in self.output_qubits:
            props = self.target["measure"].get((q,)) if "measure" in self.target else None
            if props is not None and props.error is not None:
                p *= 1.0 - props.error
        return p * self.idle_fidelity()

    def idle_fidelity(self) -> float:
        """Product over the idle windows (delays) of active qubits, after their first gate, of the
        average gate fidelity of T1/T2 relaxation for the window (:func:`relaxation_fidelity`): the
        analogue of a gate's 1 - error (calibrated gate errors are average gate infidelities). 1 for
        unscheduled circuits. Leading windows are skipped: a qubit still in |0> does not relax."""
        props = None if self.target is None else self.target.qubit_properties
        if props is None or "delay" not in self.isa.count_ops():
            return 1.0
        active, started, f = set(self.active_qubits), set(), 1.0
        for inst in self.isa.data:
            qubits = [self.isa.find_bit(q).index for q in inst.qubits]
            if inst.operation.name != "delay":
                started.update(qubits)
                continue
            q = qubits[0]
            if q not in active or q not in started:
                continue
            op = inst.operation
            t = op.duration * self.target.dt if op.unit == "dt" else apply_prefix(op.duration, op.unit)
            f *= relaxation_fidelity(t, *relaxation_times(props[q]))   # unknown T1 and T2: fidelity 1
        return f


def relaxation_fidelity(t: float, t1: float, t2: float) -> float:
    """Average gate fidelity of thermal relaxation (no thermal excitation) for t seconds with T1, T2 (s):
    (3 + 2 exp(-t/T2) + exp(-t/T1)) / 6, from its Pauli transfer matrix diagonal (1, e^-t/T2, e^-t/T2, e^-t/T1)."""
    return float((3.0 + 2.0 * np.exp(-t / t2) + np.exp(-t / t1)) / 6.0)


def _pass_manager(profile: TranspileProfile, region: list[int] | None = None):
    kwargs = dict(
        optimization_level=profile.optimization_level,
        layout_method=None if profile.layout_method == "default" else profile.layout_method,
        routing_method=None if profile.routing_method in ("default", "none") else profile.routing_method,
        seed_transpiler=profile.seed,
        initial_layout=profile.initial_layout,
    )
    if profile.is_device:
        target = device_target(profile.target, profile.calibration)
        if region is not None:
            return generate_preset_pass_manager(target=reduced_target(target, region), **kwargs), target
        if profile.calibration is not None:
            return generate_preset_pass_manager(target=target, **kwargs), target
        return generate_preset_pass_manager(backend=fake_backend(profile.target), **kwargs), target
    coupling = None if profile.target == "ideal" else CouplingMap(profile.coupling_map)
    if coupling is not None:
        coupling.make_symmetric()
    return generate_preset_pass_manager(basis_gates=profile.basis_gates, coupling_map=coupling, **kwargs), None


def _schedule(circuit: QuantumCircuit, target: Target, sequence: str, qubits: list[int]) -> QuantumCircuit:
    """ALAP-schedule and fill the idle windows with delays, or with an X-X echo on ``qubits`` when
    ``sequence`` is 'XX' (needs the target's gate durations)."""
    if sequence == "none":
        pad = PadDelay(target=target)
    elif sequence == "XX":
        pad = PadDynamicalDecoupling(target=target, dd_sequence=[XGate(), XGate()], qubits=qubits)
    else:
        raise ValueError(f"unknown dynamical-decoupling sequence {sequence!r}")
    return PassManager([ALAPScheduleAnalysis(target=target), pad]).run(circuit)


@functools.lru_cache(maxsize=64)
def _transpile_cached(name: str, profile_key: str, n_qubits: int, n_layers: int) -> TranspiledReadout:
    profile = TranspileProfile.model_validate_json(profile_key)
    qc, x, w = ansatz(name, n_qubits, n_layers)
    region = None
    if profile.region == "compact":
        region = compact_region(device_target(profile.target, profile.calibration), qc.num_qubits)
    pm, target = _pass_manager(profile, region)
    swap_counts = [0]
    baseline = []   # SWAPs already in the synthesized logical circuit (the QFT's final reversal)

    def count_swaps(**kwargs):
        swaps = kwargs["dag"].count_ops().get("swap", 0)
        if not baseline and type(kwargs["pass_"]).__name__ == "HighLevelSynthesis":
            baseline.append(swaps)
        swap_counts.append(swaps)

    isa = pm.run(qc, callback=count_swaps)
    if isa.layout is not None:
        final = isa.layout.final_index_layout()
        output_qubits = [final[q] for q in range(n_qubits)]
    else:
        output_qubits = list(range(n_qubits))
    if region is not None:   # region index -> physical qubit: a valid ISA circuit of the whole device
        full = QuantumCircuit(target.num_qubits, name=isa.name, global_phase=isa.global_phase)
        for inst in isa.data:
            full.append(inst.operation, [region[isa.find_bit(q).index] for q in inst.qubits])
        isa, output_qubits = full, [region[q] for q in output_qubits]
    active = sorted({isa.find_bit(q).index for inst in isa.data if inst.operation.name not in _IGNORED for q in inst.qubits}
                    | set(output_qubits))
    if profile.scheduled:
        isa = _schedule(isa, target, profile.dynamical_decoupling, active)
    return TranspiledReadout(name, profile, qc, x, w, isa, output_qubits, active, max(swap_counts) - (baseline[0] if baseline else 0), target)


def transpile_readout(name: str, profile: TranspileProfile | str = "ideal", n_qubits: int = 8, n_layers: int = 3) -> TranspiledReadout:
    """Compile ansatz ``name`` with ``profile`` (object, name or YAML path). Cached per (ansatz, profile, size)."""
    profile = load_profile(profile) if not isinstance(profile, TranspileProfile) else profile
    return _transpile_cached(name, profile.model_dump_json(), n_qubits, n_layers)
