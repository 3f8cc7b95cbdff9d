"""The Heisenberg-picture coefficients of noisy readouts (quantum/heisenberg.py) and trainable circuit weights
under noise (NoisyCircuit(train_weights=True), `noise-aware --train-circuits`).

References: the grid construction (3^n noisy circuits simulated forwards, quantum/noisy_readout.py) and the
backend's own noisy simulation of the transpiled circuits; gradients against the parameter-shift rule applied
to the grid construction (each weight enters one rz)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from hqc_qiskit.errors import ConfigError, EngineError
from hqc_qiskit.quantum.backends import CircuitBatch, make_backend
from hqc_qiskit.quantum.heisenberg import HeisenbergReadout, observable_vector
from hqc_qiskit.quantum.noisy_readout import (NoisyCircuit, contract, grid_coefficients, heisenberg_engine,
                                              noisy_coefficients, readout_simulator)

EAGLE = "aer-noise:fake_brisbane@ibm_eagle_compact"


def _engine(backend, ansatz, n, layers):
    return HeisenbergReadout(readout_simulator(backend, ansatz, n, layers))


@pytest.mark.parametrize("name,ansatz", [(EAGLE, "cz"), (EAGLE, "cx"), (EAGLE, "basic"), (EAGLE, "qft_cz"),
                                         ("aer-noise:fake_torino@ibm_heron_compact", "cz"),
                                         ("aer-noise:thermal@ibm_eagle_compact_dd", "cz"),
                                         ("aer-noise:depolarizing", "cx")])
def test_heisenberg_coefficients_equal_the_grid_construction(name, ansatz):
    """Device snapshots (gate, readout and idle errors), a Heron chip (CZ), dynamical decoupling with thermal
    idle noise, QFT ancillas (qubits without an input), a readout without entangler (no two-qubit gate)."""
    rng = np.random.default_rng(5)
    n, layers = 3, 2
    w = rng.uniform(0, 2 * np.pi, size=(layers, n))
    backend = make_backend(name)
    reference = grid_coefficients(backend, ansatz, n, layers, w)
    c = _engine(backend, ansatz, n, layers).coefficients(w).numpy()
    assert np.max(np.abs(c - reference)) < 1e-12
    assert np.max(np.abs(reference)) > 0.1


def test_noisy_coefficients_by_both_methods_agree_and_other_methods_are_refused():
    backend = make_backend("aer-noise:depolarizing", scale=2.0)
    w = np.random.default_rng(0).uniform(0, 6, size=(1, 2))
    a = noisy_coefficients(backend, "cz", 2, 1, w)
    b = noisy_coefficients(backend, "cz", 2, 1, w, method="grid")
    assert np.max(np.abs(a - b)) < 1e-13
    with pytest.raises(ConfigError, match="unknown coefficient method"):
        noisy_coefficients(backend, "cz", 2, 1, w, method="forwards")


def test_weight_gradients_equal_the_parameter_shift_of_the_grid_construction():
    rng = np.random.default_rng(1)
    n, layers = 3, 2
    backend = make_backend(EAGLE)
    w0 = rng.uniform(0, 2 * np.pi, size=(layers, n))
    projection = rng.normal(size=(3**n, n))
    w = torch.tensor(w0, requires_grad=True)
    (_engine(backend, "cz", n, layers).coefficients(w) * torch.as_tensor(projection)).sum().backward()
    for idx in [(0, 0), (1, 2)]:       # a weight before the first entangler (prefix) and one after it (body)
        shift = np.zeros_like(w0)
        shift[idx] = np.pi / 2
        plus, minus = (float((grid_coefficients(backend, "cz", n, layers, w0 + s) * projection).sum())
                       for s in (shift, -shift))
        assert float(w.grad[idx]) == pytest.approx((plus - minus) / 2, abs=1e-11)
    assert float(w.grad.abs().max()) > 1e-3


def test_observable_vector_is_the_mean_measured_z():
    confusion = np.array([[0.97, 0.03], [0.08, 0.92]])                 # [prepared, measured]
    v = observable_vector(confusion)
    for bit, z in ((0, 1.0), (1, -1.0)):                                 # prepared |0>: <I> = 1, <Z> = z
        assert v[0] + v[3] * z == pytest.approx(confusion[bit, 0] - confusion[bit, 1])


def _custom(circuit: QuantumCircuit, x, w):
    """A HeisenbergReadout over a hand-made 'transpiled' circuit without noise."""
    measured = circuit.copy()
    measured.save_probabilities(qubits=list(range(len(x))), label="probs")
    tr = SimpleNamespace(inputs=x, weights=w, ansatz="custom", profile=SimpleNamespace(name="test"))
    sim = SimpleNamespace(tr=tr, circuit=measured, noise=SimpleNamespace(model=None), confusion=[np.eye(2)] * len(x))
    return HeisenbergReadout(sim)


def test_circuits_outside_the_construction_are_refused():
    x, w = ParameterVector("x", 2), ParameterVector("w", 1)
    late = QuantumCircuit(2)
    late.rz(x[0], 0)
    late.cz(0, 1)
    late.rz(x[1], 1)                 # an input after its qubit's first two-qubit gate
    late.rz(w[0], 0)
    with pytest.raises(EngineError, match="input 1 enters"):
        _custom(late, x, w)
    doubled = QuantumCircuit(2)
    doubled.rz(2 * x[0], 0)          # cos(2x): not in the span of (1, cos x, sin x)
    doubled.rz(x[1], 1)
    doubled.rz(w[0], 0)
    with pytest.raises(EngineError, match="input 0 enters"):
        _custom(doubled, x, w)
    other = QuantumCircuit(2)
    other.rz(x[0], 0)
    other.rz(x[1], 1)
    other.ry(w[0], 0)                # a weight in a gate the construction does not rebuild
    with pytest.raises(EngineError, match="other than rz"):
        _custom(other, x, w)


def test_trainable_noisy_circuit_gradients_and_rebuilt_coefficients():
    """Training forward: weight gradients of a force-like loss equal finite differences; after the step, evaluation
    uses the coefficients of the new weights, and the saved state holds them."""
    torch.manual_seed(0)
    circuit = NoisyCircuit("cz", 2, 2, noise_backend="aer-noise:depolarizing", noise_scale=3.0,
                           train_weights=True).double()
    assert isinstance(circuit.weight, torch.nn.Parameter)
    x0 = torch.rand(5, 2, dtype=torch.float64) * 6

    def loss(c):
        x = x0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(contract(c, x).sum(), x, create_graph=True)
        return g.pow(2).sum() + contract(c, x).sum()

    circuit.train()
    x = x0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(circuit(x).sum(), x, create_graph=True)
    (g.pow(2).sum() + circuit(x0).sum()).backward()
    engine = heisenberg_engine("aer-noise:depolarizing", 3.0, "cz", 2, 2)
    w0 = circuit.weight.detach().clone()
    for idx in [(0, 1), (1, 0)]:
        e = torch.zeros_like(w0)
        e[idx] = 1e-6
        fd = (loss(engine.coefficients(w0 + e)) - loss(engine.coefficients(w0 - e))) / 2e-6
        assert float(circuit.weight.grad[idx]) == pytest.approx(float(fd.detach()), abs=1e-7)
    with torch.no_grad():
        circuit.weight -= 0.3 * circuit.weight.grad
    circuit.eval()
    expected = noisy_coefficients(make_backend("aer-noise:depolarizing", scale=3.0), "cz", 2, 2,
                                  circuit.weight.detach().numpy())
    assert np.max(np.abs(circuit(x0).detach().numpy() - contract(torch.as_tensor(expected), x0).numpy())) < 1e-12
    state = circuit.state_dict()
    assert set(state) == {"weight", "coefficients", "built"}
    assert np.max(np.abs(state["coefficients"].numpy() - expected)) < 1e-12


def test_ema_copy_of_a_trainable_noisy_circuit_uses_its_averaged_weights():
    """AveragedModel copies buffers (the live model's coefficients) and averages parameters: the copy must not use
    coefficients of weights it does not hold, in its forward or in its saved state."""
    from hqc_qiskit.ema import ema_model

    circuit = NoisyCircuit("cz", 2, 1, noise_backend="aer-noise:depolarizing", train_weights=True).double()
    ema = ema_model(circuit, 0.5)
    ema.update_parameters(circuit)                            # the first update copies
    circuit.train()
    circuit(torch.rand(3, 2, dtype=torch.float64)).sum().backward()
    with torch.no_grad():
        circuit.weight += 0.5
    circuit(torch.rand(3, 2, dtype=torch.float64))           # live coefficients of the new weights
    ema.update_parameters(circuit)
    averaged = ema.module.weight.detach()
    assert not torch.equal(averaged, circuit.weight.detach())
    expected = heisenberg_engine("aer-noise:depolarizing", 1.0, "cz", 2, 1).coefficients(averaged).detach()
    x = torch.rand(4, 2, dtype=torch.float64)
    ema.module.eval()
    assert torch.allclose(ema.module(x), contract(expected, x), atol=1e-12, rtol=0)
    assert torch.allclose(ema.module.state_dict()["coefficients"], expected, atol=1e-12, rtol=0)


def test_train_circuit_weights_is_for_the_noisy_engine_only(tiny_config):
    with pytest.raises(ConfigError, match="train_circuit_weights are for engine 'noisy'"):
        tiny_config(model__readout={"kind": "quantum", "n_qubits": 2, "n_layers": 1, "train_circuit_weights": True})


def test_noise_aware_cli_with_train_circuits(tmp_path, monkeypatch):
    """`noise-aware --train-circuits`: refused with a clear error when the weight gradients would not fit the memory;
    otherwise circuit weights move, the report's source rows use the source's own circuit weights, and every row
    re-evaluates from its checkpoint."""
    from conftest import DATA, TINY_MODEL, _merge
    from typer.testing import CliRunner

    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.cli import app
    from hqc_qiskit.config import load_config
    from hqc_qiskit.data.dataset import load_labelled
    from hqc_qiskit.evaluate import evaluate
    from hqc_qiskit.noise_aware import verify_against_backend
    from hqc_qiskit.train import train

    test_file = DATA / "si_liquid_3000K.test.extxyz.gz"
    from ase.io import write

    frames = tmp_path / "test3.extxyz"
    write(frames, load_labelled(test_file)[:3])
    raw = {"name": "tiny", "seed": 2, "output_dir": str(tmp_path / "source"),
           "data": {"train": str(DATA / "si_liquid_3000K.val.extxyz.gz"), "val": str(frames), "test": str(frames),
                    "max_train": 6},
           "model": dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": "cz", "n_qubits": 2, "n_layers": 1},
                         dtype="float64"),
           "train": {"batch_size": 3, "max_epochs": 1, "lr": 0.01, "ema_decay": 0.9}}
    source = load_config(raw=_merge(raw, {}))
    train(source, progress=False)
    out = tmp_path / "tuned"
    args = ["noise-aware", str(source.run_dir()), "--backend", "aer-noise:depolarizing", "--noise-scale", "3",
            "--out", str(out), "--epochs", "2", "--lr", "0.05", "--train-circuits", "--verify-frames", "1",
            "--test", str(frames)]
    import importlib

    import psutil

    importlib.import_module("qiskit_aer")   # imported first: it reads the total memory once, at import

    with monkeypatch.context() as m:   # a machine with 1 kB free
        m.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=1000))
        refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert "GiB available" in " ".join(refused.output.split()) and not (out / "checkpoint.pt").exists()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    src, tuned = load_model(source.run_dir()), load_model(out)
    assert tuned.config.readout.train_circuit_weights
    for a, b in zip(src.readouts, tuned.readouts):
        assert float((a.circuit.weight - b.circuit.weight).abs().max()) > 1e-4      # circuits trained
    report = json.loads((out / "noise_aware.json").read_text())
    assert report["verify"]["max_energy_difference_mev_atom"] < 1e-6
    for row in report["rows"]:
        again = evaluate(row["checkpoint"], frames)
        assert again["rmse_e_mev_atom"] == pytest.approx(row["rmse_e_mev_atom"], rel=1e-9)
    # the source under noise runs the source's circuits: equal to the backend's own simulation of them
    under_noise = load_model(out / "source_under_noise.pt")
    for a, b in zip(src.readouts, under_noise.readouts):
        assert torch.equal(a.circuit.weight, b.circuit.weight)
    check = verify_against_backend(under_noise, load_labelled(frames)[:1], make_backend("aer-noise:depolarizing", scale=3))
    assert check["max_energy_difference_mev_atom"] < 1e-6


def test_the_construction_reproduces_direct_simulation_of_a_whole_chip_readout():
    """A routed whole-chip profile (more reduced qubits than outputs, idle qubits joining late) at 4 random inputs."""
    rng = np.random.default_rng(2)
    n, layers = 4, 1
    backend = make_backend("aer-noise:fake_brisbane@ibm_eagle")
    w = rng.uniform(0, 2 * np.pi, size=(layers, n))
    x = rng.uniform(-np.pi, np.pi, size=(4, n))
    from hqc_qiskit.quantum.simulate import z_signs

    direct = backend.distributions(CircuitBatch("cz", n, layers, [(x, w.reshape(-1))])) @ z_signs(n)
    c = _engine(backend, "cz", n, layers).coefficients(w)
    assert np.max(np.abs(contract(c, torch.as_tensor(x)).numpy() - direct)) < 1e-12


def test_trainable_readouts_too_large_for_the_memory_are_refused_before_training():
    """The pre-flight check of --train-circuits: the estimate grows as 4^q with the qubits the transpiled circuit
    touches; over the available memory a ConfigError names the qubits and the way out; wide circuits get a log
    line; fixed circuit weights are not checked."""
    from torch import nn

    from hqc_qiskit.quantum.heisenberg import GRADIENT_VECTORS
    from hqc_qiskit.quantum.noisy_readout import LARGE_TRAINABLE_QUBITS, check_trainable_noisy_readouts

    routed = "aer-noise:fake_brisbane@ibm_eagle"
    # the 8-qubit readout with one layer: 8 qubits on the compact profile, routed onto 12 on the whole chip
    trainable = [NoisyCircuit("cz", 8, 1, noise_backend=b, train_weights=True) for b in (EAGLE, routed)]
    compact, whole = (heisenberg_engine(b, 1.0, "cz", 8, 1) for b in (EAGLE, routed))
    assert compact.n_qubits == 8 and whole.n_qubits > LARGE_TRAINABLE_QUBITS
    assert compact.gradient_bytes() == GRADIENT_VECTORS * 8 * 4**8 * 8
    assert whole.gradient_bytes() == compact.gradient_bytes() * 4 ** (whole.n_qubits - compact.n_qubits)
    lines = []
    check_trainable_noisy_readouts(nn.ModuleList(trainable), log=lines.append, available_bytes=2**50)
    assert len(lines) == 1 and f"{whole.n_qubits} qubits touched" in lines[0] and "compact profile" in lines[0]
    check_trainable_noisy_readouts(trainable[0], log=lines.append, available_bytes=compact.gradient_bytes())
    assert len(lines) == 1   # the compact one alone: within the memory, no line
    with pytest.raises(ConfigError) as info:
        check_trainable_noisy_readouts(nn.ModuleList(trainable), available_bytes=whole.gradient_bytes())
    message = str(info.value)
    assert f"{whole.n_qubits} qubits touched" in message and "aer-noise:fake_brisbane@ibm_eagle_compact" in message
    assert "--train-circuits" in message
    fixed = NoisyCircuit("cz", 8, 1, noise_backend=routed, train_weights=False)
    check_trainable_noisy_readouts(nn.ModuleList([fixed]), available_bytes=0)


def test_the_way_out_names_the_devices_own_compact_profile():
    """The hint of the memory check names the compact profile of the readout's own device, or says how to make
    one where none ships."""
    from hqc_qiskit.quantum.noisy_readout import _compact_hint

    assert "aer-noise:fake_torino@ibm_heron_compact" in _compact_hint("aer-noise:fake_torino@ibm_heron")
    assert "aer-noise:fake_brisbane@ibm_eagle_compact" in _compact_hint("aer-noise:fake_brisbane")
    falcon = _compact_hint("aer-noise:fake_guadalupe")
    assert "none ships" in falcon and "'ibm_falcon16'" in falcon and "region: compact" in falcon
