"""Device snapshots by name: ``fake_brisbane`` -> qiskit-ibm-runtime's ``FakeBrisbane()`` (offline, no network)."""

from __future__ import annotations

import functools
import math

from qiskit.transpiler import InstructionProperties, QubitProperties, Target

from ..errors import ConfigError


def fake_device_names() -> list[str]:
    """Names of the fake (snapshot) devices qiskit-ibm-runtime ships, e.g. ['fake_brisbane', ...]."""
    from qiskit_ibm_runtime import fake_provider

    names = []
    for attr in dir(fake_provider):
        cls = getattr(fake_provider, attr)
        if attr.startswith("Fake") and isinstance(cls, type) and "Provider" not in attr and attr != "FakeBackendV2":
            base = attr[4:].removesuffix("V2")
            names.append("fake_" + base.lower())
    return sorted(set(names))


@functools.lru_cache(maxsize=None)
def fake_backend(name: str):
    """The fake backend ``name`` ('fake_brisbane' or 'FakeBrisbane'); cached, as loading takes ~2 s."""
    from qiskit_ibm_runtime import fake_provider

    key = name.lower().removeprefix("fake_").removeprefix("fake").replace("_", "")
    for attr in dir(fake_provider):
        if attr.startswith("Fake") and attr[4:].removesuffix("V2").lower() == key:
            cls = getattr(fake_provider, attr)
            if isinstance(cls, type):
                return cls()
    raise ConfigError(f"unknown fake device {name!r}; available: {', '.join(fake_device_names())}")


def relaxation_times(qp: QubitProperties | None) -> tuple[float, float]:
    """(T1, T2) of a qubit in seconds, T2 truncated to 2 T1 (missing T2: 2 T1), missing values infinite:
    the rule of Aer's device noise models (``NoiseModel.from_backend``)."""
    t1 = None if qp is None else qp.t1
    t2 = None if qp is None else qp.t2
    if t1 is not None:
        t2 = 2 * t1 if t2 is None else min(t2, 2 * t1)
    return (math.inf if t1 is None else t1, math.inf if t2 is None else t2)


def reduced_target(target: Target, qubits: list[int], scale: float = 1.0) -> Target:
    """The calibration of ``qubits`` (relabelled 0..n-1) with errors x scale and T1, T2 / scale."""
    index = {p: i for i, p in enumerate(qubits)}
    props = []
    for p in qubits:
        qp = target.qubit_properties[p] if target.qubit_properties else None
        t1 = qp.t1 / scale if qp is not None and qp.t1 and scale > 0 else None
        t2 = qp.t2 / scale if qp is not None and qp.t2 and scale > 0 else None
        props.append(QubitProperties(t1=t1, t2=t2, frequency=getattr(qp, "frequency", None)))
    reduced = Target(num_qubits=len(qubits), dt=target.dt, qubit_properties=props)
    for name in target.operation_names:
        if name in ("if_else", "switch_case", "for_loop", "while_loop"):
            continue
        entries = {}
        for qargs, ip in target[name].items():
            if qargs is None or not all(q in index for q in qargs):
                continue
            error = None if ip is None or ip.error is None else min(ip.error * scale, 1.0)
            entries[tuple(index[q] for q in qargs)] = InstructionProperties(
                duration=None if ip is None else ip.duration, error=error)
        if entries:
            reduced.add_instruction(target.operation_from_name(name), entries, name=name)
    return reduced


def compact_region(target: Target, size: int) -> list[int]:
    """``size`` connected physical qubits with low error: start from the best two-qubit gate and repeatedly
    add the neighbour with the lowest (gate error + its readout and sx error) (greedy). Sorted indices."""

    def qubit_error(q: int) -> float:
        total = 0.0
        for name in ("measure", "sx"):
            ip = target[name].get((q,)) if name in target else None
            total += 0.0 if ip is None or ip.error is None else ip.error
        return total

    edges = {}
    for name in target.operation_names:
        for qargs, ip in (target[name].items() if target.operation_from_name(name).num_qubits == 2 else []):
            if qargs is not None:
                err = 1.0 if ip is None or ip.error is None else ip.error
                key = tuple(sorted(qargs))
                edges[key] = min(err, edges.get(key, 1.0))
    if not edges:
        raise ValueError("target has no two-qubit gates")
    best = min(edges, key=lambda pair: edges[pair] + qubit_error(pair[0]) + qubit_error(pair[1]))
    region = set(best)
    while len(region) < size:
        frontier = [(e + qubit_error(pair[1] if pair[0] in region else pair[0]), pair)
                    for pair, e in edges.items() if (pair[0] in region) != (pair[1] in region)]
        if not frontier:
            raise ValueError(f"no connected region of {size} qubits")
        _, pair = min(frontier)
        region.update(pair)
    return sorted(region)
