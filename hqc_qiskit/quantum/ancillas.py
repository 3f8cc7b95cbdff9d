"""Exact elimination of ancilla qubits from a compiled readout circuit (a compiler pass of the exact engine).

Why hand-written: this is the engine's own compile step (no library simplifies a parameterized circuit
for the marginal of some qubits); it is what makes the 11-qubit qft ansaetze cost about as much as the
8-qubit ones. Each rule is exact linear algebra on the steps' matrices, never an approximation, and it
only fires when its precondition holds for the circuit at hand, so any ansatz in ``circuits.py``
compiles (to the full register when nothing can be eliminated).

An ancilla is a qubit that is neither an input nor an output; it starts in |0>.

Rule 1, ancillas in a known product state. While an ancilla is in a known single-qubit state s,
unentangled with the rest, a constant gate G touching it either keeps it so, G (I x |s>) = M x |s'>
(e.g. a CNOT whose target is in |+>: M = I), and is replaced by M on the other qubits (dropped when M
is a phase), or entangles it, and from then on the ancilla is "live". Ancillas never live at the end
are removed: they never influenced the outputs.

Rule 2, classical controls. A live ancilla a on which every gate from its live point on is diagonal
(commutes with Z_a; e.g. it is only ever the control of CZ or CNOT gates) keeps its Z populations
|s_a(0)|^2, |s_a(1)|^2 from that point. The output distribution is then the mixture over its values v of
the circuit with every such gate replaced by its v-block <v|G|v>. Branches whose gates coincide are
merged (qft_cz: ancillas 9 and 10 only add phases, so 8 assignments collapse to 2 branches).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from .steps import Branch, Step, commutes_with_z

_TOL = 1e-10
#: at most this many classical ancillas are branched over (2^12 branches before merging)
MAX_CLASSICAL = 12


def eliminate_ancillas(steps: list[Step], n_total: int, input_qubits: set[int], n_outputs: int) -> tuple[int, list[Branch], dict[int, int]]:
    """(qubits left, branches on the renumbered register, old qubit -> new qubit) for ``steps``."""
    ancillas = [q for q in range(n_total) if q >= n_outputs and q not in input_qubits]
    identity_map = {q: q for q in range(n_total)}
    if not ancillas:
        return n_total, [Branch(1.0, list(steps))], identity_map
    steps, dead, live = _propagate_known_states(steps, ancillas)
    classical = [a for a, (at, _) in live.items() if all(commutes_with_z(s, a, _TOL) for s in steps[at:] if a in s.qubits)]
    if len(classical) > MAX_CLASSICAL:
        classical = []
    branches = _branch_over(steps, {a: live[a][1] for a in classical})
    removed = set(dead) | set(classical)
    if not removed:
        return n_total, branches, identity_map
    new_index = {q: i for i, q in enumerate(q for q in range(n_total) if q not in removed)}
    renumbered = [Branch(b.probability, [_renumber(s, new_index) for s in b.steps]) for b in branches]
    return len(new_index), renumbered, new_index


def _propagate_known_states(steps: list[Step], ancillas: list[int]):
    """Rule 1. Returns (new steps, {dead ancilla: final state}, {live ancilla: (live step index, state before)})."""
    known = {a: np.array([1.0, 0.0], dtype=complex) for a in ancillas}
    live: dict[int, tuple[int, np.ndarray]] = {}
    out: list[Step] = []
    for step in steps:
        on_known = [q for q in step.qubits if q in known]
        if not on_known:
            out.append(step)
            continue
        reduced = _act_on_known(step, known) if step.matrix is not None else None
        if reduced is None:
            for q in on_known:
                live[q] = (len(out), known.pop(q))
            out.append(step)
            continue
        new_states, rest = reduced
        known.update(new_states)
        if rest is not None:
            out.append(rest)
    return out, known, live


def _bits(k: int) -> np.ndarray:
    """(2^k, k): bit j of each index (Qiskit order: bit j = the gate's j-th qubit)."""
    return (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1


def _sub_index(bits: np.ndarray, positions: list[int]) -> np.ndarray:
    """Index into the sub-register of ``positions`` (bit t = positions[t]) for every full index."""
    return sum((bits[:, j] << t for t, j in enumerate(positions)), np.zeros(len(bits), dtype=int))


def _act_on_known(step: Step, known: dict[int, np.ndarray]) -> tuple[dict[int, np.ndarray], Step | None] | None:
    """Rule 1 for one constant gate: (new states of its known qubits, the gate left on its other qubits
    or None when that is a phase), or None when the gate entangles a known qubit."""
    g, qubits = step.matrix, step.qubits
    k = len(qubits)
    bits = _bits(k)
    kpos = [j for j, q in enumerate(qubits) if q in known]
    upos = [j for j, q in enumerate(qubits) if q not in known]
    ki, ui = _sub_index(bits, kpos), _sub_index(bits, upos)
    amplitude = np.prod([known[qubits[j]][bits[:, j]] for j in kpos], axis=0)
    embed = np.zeros((2**k, 2 ** len(upos)), dtype=complex)   # I_U x |s_K>, an isometry
    embed[np.arange(2**k), ui] = amplitude
    t = g @ embed
    # t must be |s'_K> x M: as a (K index, (U out, U in)) matrix it has rank one
    r = np.zeros((2 ** len(kpos), 2 ** len(upos), 2 ** len(upos)), dtype=complex)
    r[ki, ui, :] = t
    u, sv, vh = np.linalg.svd(r.reshape(2 ** len(kpos), -1))
    if sv[1:].max(initial=0.0) > _TOL:
        return None
    factors = _product_factors(u[:, 0], len(kpos))
    if factors is None:
        return None
    new_states = {qubits[j]: factors[t_] for t_, j in enumerate(kpos)}
    if not upos:
        return new_states, None
    m = (sv[0] * vh[0]).reshape(2 ** len(upos), 2 ** len(upos))
    if _is_phase(m):
        return new_states, None
    return new_states, Step(tuple(qubits[j] for j in upos), matrix=m)


def _product_factors(vec: np.ndarray, n: int) -> list[np.ndarray] | None:
    """Single-qubit states [bit 0, bit 1, ...] whose product is ``vec`` (2^n), or None if entangled."""
    factors = []
    for _ in range(n - 1):
        u, sv, vh = np.linalg.svd(vec.reshape(-1, 2))   # rows: higher bits, columns: lowest bit
        if sv[1] > _TOL:
            return None
        factors.append(vh[0])
        vec = sv[0] * u[:, 0]
    factors.append(vec / np.linalg.norm(vec))
    return factors


def _is_phase(m: np.ndarray) -> bool:
    return bool(np.allclose(m, m[0, 0] * np.eye(len(m)), atol=_TOL))


def _branch_over(steps: list[Step], classical: dict[int, np.ndarray]) -> list[Branch]:
    """Rule 2: one branch per assignment of the classical ancillas, equal branches merged."""
    if not classical:
        return [Branch(1.0, list(steps))]
    names = sorted(classical)
    merged: dict[tuple, Branch] = {}
    for values in itertools.product((0, 1), repeat=len(names)):
        p = float(np.prod([abs(classical[a][v]) ** 2 for a, v in zip(names, values)]))
        if p < 1e-14:
            continue
        assignment = dict(zip(names, values))
        sliced = [s for s in (_slice(step, assignment) for step in steps) if s is not None]
        key = tuple(_step_key(s) for s in sliced)
        if key in merged:
            merged[key].probability += p
        else:
            merged[key] = Branch(p, sliced)
    return list(merged.values())


def _slice(step: Step, assignment: dict[int, int]) -> Step | None:
    """The step with its classical qubits fixed to their values; None when only a phase is left."""
    fixed = [j for j, q in enumerate(step.qubits) if q in assignment]
    if not fixed:
        return step
    rest = [j for j, q in enumerate(step.qubits) if q not in assignment]
    if not rest or step.matrix is None:   # a diagonal gate on classical qubits only: a phase
        return None
    bits = _bits(len(step.qubits))
    keep = np.all([bits[:, j] == assignment[step.qubits[j]] for j in fixed], axis=0)
    rows = np.flatnonzero(keep)           # ascending: the remaining bits keep their order
    block = step.matrix[np.ix_(rows, rows)]
    if _is_phase(block):
        return None
    return Step(tuple(step.qubits[j] for j in rest), matrix=block)


def _step_key(step: Step) -> tuple:
    matrix = None if step.matrix is None else np.round(step.matrix, 9).tobytes()
    return (step.qubits, step.gate, step.weight_index, step.coeff, step.offset, matrix)


def _renumber(step: Step, new_index: dict[int, int]) -> Step:
    try:
        qubits = tuple(new_index[q] for q in step.qubits)
    except KeyError as err:  # a bug in the rules above, never a user error
        raise AssertionError(f"eliminated qubit {err} still has a gate") from None
    return dataclasses.replace(step, qubits=qubits)
