"""The batched density-matrix engine against qiskit's exact density-matrix evolution and Aer."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import DensityMatrix, Kraus, Operator
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, amplitude_damping_error, depolarizing_error, thermal_relaxation_error
from qiskit_aer.utils import insert_noise

from hqc_qiskit.quantum.backends import CircuitBatch, SimulatorBackend
from hqc_qiskit.quantum.density import BatchedDensityMatrix
from hqc_qiskit.quantum.mitigation import fold_global


def _exact(circuit: QuantumCircuit, noise_model, row: np.ndarray) -> np.ndarray:
    """Reference: qiskit.quantum_info evolution of one bound circuit, instruction by instruction, with the
    noise model's errors inserted by Aer's own ``insert_noise``; probabilities of the saved qubits."""
    bound = circuit.assign_parameters(row) if circuit.num_parameters else circuit
    noisy = insert_noise(bound, noise_model, transpile=False) if noise_model is not None else bound
    rho = DensityMatrix.from_label("0" * bound.num_qubits)
    for inst in noisy.data:
        name, qubits = inst.operation.name, [noisy.find_bit(q).index for q in inst.qubits]
        if name == "save_probabilities":
            measured = qubits
        elif name not in ("barrier", "delay"):
            channel = Kraus(inst.operation) if name in ("kraus", "quantum_channel") else Operator(inst.operation)
            rho = rho.evolve(channel, qubits)
    return rho.probabilities(measured)


def _aer(circuit: QuantumCircuit, noise_model, values: np.ndarray) -> np.ndarray:
    simulator = AerSimulator(method="density_matrix", noise_model=noise_model)
    binds = [{p: values[:, i] for i, p in enumerate(circuit.parameters)}]
    result = simulator.run([circuit], parameter_binds=binds, shots=1).result()
    return np.stack([result.data(i)["probs"] for i in range(values.shape[0])])


def _toy_circuit() -> tuple[QuantumCircuit, NoiseModel]:
    """Four qubits, one idle; every kind of step: affine rz of an input, a weight shared by the batch,
    non-affine expressions of one and two parameters and a parameterised rx (row-by-row path), cz, ecr and cx in both qubit orders,
    a Kraus channel, 1q/2q noise; the measured qubits out of order and one active qubit traced out."""
    x, y, w = Parameter("x"), Parameter("y"), Parameter("w")
    qc = QuantumCircuit(4)
    qc.sx(0)
    qc.rz(x + 0.3, 0)
    qc.rx(y, 1)
    qc.rz(w * 2, 2)
    qc.sx(2)
    qc.cz(0, 1)
    qc.rz(x * y, 1)
    qc.rz(x * x, 2)
    qc.append(Kraus(amplitude_damping_error(0.2).to_quantumchannel()), [1])
    qc.ecr(2, 1)
    qc.sx(1)
    qc.cx(1, 0)
    qc.ecr(0, 2)
    qc.rz(np.pi / 5, 0)
    qc.sx(0)
    qc.save_probabilities(qubits=[2, 0], label="probs")
    noise = NoiseModel(basis_gates=["sx", "rz", "rx", "cz", "ecr", "cx"])
    noise.add_all_qubit_quantum_error(depolarizing_error(0.05, 1).compose(thermal_relaxation_error(50, 30, 3)), "sx")
    noise.add_quantum_error(depolarizing_error(0.1, 2), "ecr", [2, 1])
    noise.add_quantum_error(thermal_relaxation_error(40, 60, 5).tensor(thermal_relaxation_error(70, 20, 5)), "ecr", [0, 2])
    noise.add_all_qubit_quantum_error(depolarizing_error(0.08, 2), "cz")
    return qc, noise


@pytest.mark.parametrize("precision,atol", [("double", 1e-13), ("single", 1e-5)])
def test_batched_density_matrix_equals_exact_evolution(precision, atol):
    qc, noise = _toy_circuit()
    values = np.random.default_rng(0).uniform(-2, 2, (5, qc.num_parameters))
    values[:, [p.name for p in qc.parameters].index("w")] = 0.7          # a weight: the same in every row
    engine = BatchedDensityMatrix(qc, noise, precision)
    ours = engine.probabilities(values)
    exact = np.stack([_exact(qc, noise, row) for row in values])
    np.testing.assert_allclose(ours, exact, atol=atol)
    np.testing.assert_allclose(ours, _aer(qc, noise, values), atol=1e-8)   # Aer: ~1e-9 from the exact evolution
    assert exact.std(axis=0).min() > 1e-3                                   # the rows really differ


@pytest.mark.parametrize("tiles", [False, True])
def test_batched_density_matrix_chunks_and_tiles_agree(monkeypatch, tiles):
    """Splitting the batch into cache-sized chunks, and (one large state at a time) applying blocks in tiles
    slab by slab, changes nothing."""
    import hqc_qiskit.quantum.density as density

    qc, noise = _toy_circuit()
    save = qc.data.pop()
    qc.cz(3, 1)              # all four qubits live: tiles of 3 qubits leave 4 rows, in slabs of 2
    qc.data.append(save)
    values = np.random.default_rng(1).uniform(-2, 2, (7, qc.num_parameters))
    whole = BatchedDensityMatrix(qc, noise).probabilities(values)
    if tiles:   # one state per chunk, larger than the budget: tiles of up to 3 qubits, slabs of 2 rows
        monkeypatch.setattr(density, "_CHUNK_BYTES", 4**qc.num_qubits * 8 - 1)
        monkeypatch.setattr(density, "_TILE_QUBITS", 3)
        monkeypatch.setattr(density, "_TILE_BYTES", 2 * 4**3 * 8)
    else:       # two rows per chunk
        monkeypatch.setattr(density, "_CHUNK_BYTES", 2 * 4**qc.num_qubits * 8)
    np.testing.assert_allclose(BatchedDensityMatrix(qc, noise).probabilities(values), whole, atol=1e-15)


@pytest.mark.parametrize("noise,profile", [("fake_brisbane", "ibm_eagle_compact"), ("fake_torino", "ibm_heron_compact"),
                                           ("thermal", None)])
def test_noisy_readouts_batched_engine_equals_aer(noise, profile):
    """The shipped device and parametric noise on transpiled readouts (idle relaxation, ZNE folding): the
    batched engine gives Aer's distributions, and qiskit's exact ones for one row."""
    rng = np.random.default_rng(2)
    batch = CircuitBatch("cx", 3, 1, [(rng.uniform(-2, 2, (3, 3)), rng.uniform(0, 2 * np.pi, 3))])
    sim = SimulatorBackend(noise, profile).simulator(batch)
    assert sim.engine == "batched"
    aer = SimulatorBackend(noise, profile, engine="aer").simulator(batch)
    params = sim.tr.parameter_values(batch.x, batch.w, sim.tr.reduced)
    for fold in (1, 3):
        ours = sim.with_circuit(fold_global(sim.tr.reduced, fold)) if fold > 1 else sim
        theirs = aer.with_circuit(fold_global(aer.tr.reduced, fold)) if fold > 1 else aer
        probs = ours.distributions(params)
        np.testing.assert_allclose(probs, theirs.distributions(params), atol=1e-8)
        raw = ours._batched(ours.circuit).probabilities(params[:1])[0]
        np.testing.assert_allclose(raw, _exact(ours.circuit, ours.noise.model, params[0]), atol=1e-12)


def test_batched_engine_rejects_what_it_cannot_simulate():
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    with pytest.raises(ValueError, match="unsupported instruction 'measure'"):
        BatchedDensityMatrix(qc)
    with pytest.raises(ValueError, match="save_probabilities"):
        BatchedDensityMatrix(QuantumCircuit(1))
    wide = QuantumCircuit(5)
    wide.mcx([0, 1, 2, 3], 4)
    with pytest.raises(ValueError, match="on 5 qubits"):
        BatchedDensityMatrix(wide)
    sim = SimulatorBackend("fake_brisbane", "ibm_eagle_compact").simulator(CircuitBatch("cx", 3, 1, [(np.zeros((1, 3)), np.zeros(3))]))
    with pytest.raises(ValueError, match="custom noise passes"):     # delay relaxation would be skipped silently
        BatchedDensityMatrix(sim.circuit, sim.noise.aer_model())
    with pytest.raises(ValueError, match="unknown simulation engine"):
        SimulatorBackend("thermal", engine="gpu").simulator(CircuitBatch("cx", 3, 1, [(np.zeros((1, 3)), np.zeros(3))]))
