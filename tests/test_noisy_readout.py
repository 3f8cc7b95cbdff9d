"""Noisy readouts (quantum/noisy_readout.py) and noise-aware fine-tuning (noise_aware.py, `hqc-qiskit noise-aware`).

The coefficients are checked against the backend's own noisy simulation of the transpiled circuits (the
Qiskit reference of the noisy path), and a noisy-readout model's energy and forces against the same
backend's expectation values and parameter-shift forces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DATA, TINY_MODEL, squashed

from hqc_qiskit.errors import ConfigError, EngineError, HQCError
from hqc_qiskit.quantum.backends import CircuitBatch, SimulatorBackend, make_backend
from hqc_qiskit.quantum.noisy_readout import (NoisyCircuit, coefficients_from_grid, contract, grid_inputs,
                                              noisy_coefficients)
from hqc_qiskit.quantum.simulate import z_signs

TEST_FILE = DATA / "si_liquid_3000K.test.extxyz.gz"


def _backend_expectations(backend, ansatz, n, layers, x, w):
    return backend.distributions(CircuitBatch(ansatz, n, layers, [(x, w.reshape(-1))])) @ z_signs(n)


@pytest.mark.parametrize("name,ansatz", [("aer-noise:depolarizing", "cz"), ("aer-noise:depolarizing", "cx"),
                                         ("aer-noise:fake_brisbane@ibm_eagle_compact", "cz")])
def test_coefficients_reproduce_the_noisy_simulation(name, ansatz):
    rng = np.random.default_rng(3)
    n, layers = 3, 2
    w = rng.uniform(0, 2 * np.pi, size=(layers, n))
    backend = make_backend(name)
    c = noisy_coefficients(backend, ansatz, n, layers, w)
    x = rng.uniform(-7, 7, size=(25, n))                     # also outside one period
    direct = _backend_expectations(backend, ansatz, n, layers, x, w)
    assert np.max(np.abs(contract(torch.as_tensor(c), torch.as_tensor(x)).numpy() - direct)) < 1e-11
    # the noise matters: the noiseless engine differs from it by far more than the tolerance
    ideal = _backend_expectations(make_backend("aer"), ansatz, n, layers, x, w)
    assert np.max(np.abs(ideal - direct)) > 1e-3


def test_grid_interpolation_is_exact_for_multilinear_functions_only():
    rng = np.random.default_rng(0)
    n = 4
    c = torch.as_tensor(rng.normal(size=(3**n, 2)))
    values = contract(c, torch.as_tensor(grid_inputs(n))).numpy()
    assert np.allclose(coefficients_from_grid(values, n), c.numpy(), atol=1e-12)
    # a second harmonic is not in the span: the interpolant disagrees with it off the grid
    f = lambda x: np.cos(2 * x).prod(axis=1, keepdims=True)   # noqa: E731
    fit = coefficients_from_grid(f(grid_inputs(n)), n)
    x = rng.uniform(-3, 3, size=(10, n))
    assert np.max(np.abs(contract(torch.as_tensor(fit), torch.as_tensor(x)).numpy() - f(x))) > 0.1


class _SecondHarmonic(SimulatorBackend):
    """A noisy backend whose expectation values depend on cos(2 x_0): not a one-rotation embedding."""

    def distributions(self, batch, scale_factor=1):
        probs = super().distributions(batch, scale_factor)
        bend = 0.1 * np.cos(2 * batch.x[:, :1])                      # moves weight between outcome 0 and 1
        return probs + bend * (np.eye(1, probs.shape[1], 0) - np.eye(1, probs.shape[1], 1))


def test_construction_check_refuses_a_circuit_that_is_not_multilinear():
    backend = _SecondHarmonic("depolarizing")
    with pytest.raises(EngineError, match="not multilinear"):
        noisy_coefficients(backend, "cz", 2, 1, np.ones((1, 2)))


@pytest.mark.parametrize("name,mitigation,match", [("aer", None, "aer-noise"), ("exact", None, "aer-noise"),
                                                   ("aer-noise:depolarizing", "zne", "ZNE"),
                                                   ("aer-noise:depolarizing", "rem", "REM")])
def test_noisy_coefficients_refuse_backends_they_cannot_model(name, mitigation, match):
    with pytest.raises(ConfigError, match=match):
        noisy_coefficients(make_backend(name, mitigation=mitigation), "cz", 2, 1, np.ones((1, 2)))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_contract_is_the_multilinear_sum(n):
    import itertools

    rng = np.random.default_rng(n)
    c = rng.normal(size=(3**n, 2))
    x = rng.uniform(-3, 3, size=(4, n))
    b = np.stack([np.ones_like(x), np.cos(x), np.sin(x)], axis=-1)
    naive = sum(c[k] * np.prod([b[:, q, j[q]] for q in range(n)], axis=0)[:, None]
                for k, j in enumerate(itertools.product(range(3), repeat=n)))
    assert np.allclose(contract(torch.as_tensor(c), torch.as_tensor(x)).numpy(), naive, atol=1e-12)


def test_contract_has_second_derivatives():
    rng = np.random.default_rng(1)
    c = torch.as_tensor(rng.normal(size=(27, 3)))
    x = torch.as_tensor(rng.uniform(-3, 3, size=(4, 3)), dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda x: contract(c, x), (x,))


def test_unbuilt_noisy_circuit_says_how_to_build_it():
    circuit = NoisyCircuit("cz", 2, 1, noise_backend="aer-noise:depolarizing")
    with pytest.raises(EngineError, match="init_from"):
        circuit(torch.zeros(1, 2))
    with pytest.raises(ConfigError, match="noise_backend"):
        NoisyCircuit("cz", 2, 1)


def test_building_in_a_log_writes_a_line_before_and_after_each_readout():
    from hqc_qiskit.quantum.noisy_readout import build_noisy_readouts

    model = torch.nn.ModuleList([NoisyCircuit("cz", 2, 1, noise_backend="aer-noise:depolarizing", noise_scale=0.5)
                                 for _ in range(2)])
    lines = []
    assert build_noisy_readouts(model, progress=True, log=lines.append) == 2    # no terminal under pytest: no bar
    assert len(lines) == 4 and lines[0].startswith("noisy readout 1/2 (aer-noise:depolarizing x0.5): computing its 9 x 2 coefficients")
    assert "done in" in lines[1] and all(bool(m.built) for m in model)
    assert build_noisy_readouts(model, log=lines.append) == 0 and len(lines) == 4      # built ones are kept


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny HQC run (cz, 3 qubits, 1 layer, float64) trained for one epoch, shared by this module's tests."""
    from conftest import _merge, threads_per_worker

    from hqc_qiskit.config import load_config
    from hqc_qiskit.train import train

    torch.set_num_threads(threads_per_worker())
    root = tmp_path_factory.mktemp("source")
    raw = {"name": "tiny", "seed": 1, "output_dir": str(root / "run"),
           "data": {"train": str(DATA / "si_liquid_3000K.val.extxyz.gz"), "val": str(TEST_FILE), "test": str(TEST_FILE),
                    "max_train": 8, "max_val": 4},
           "model": dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": "cz", "n_qubits": 3, "n_layers": 1},
                         dtype="float64"),
           "train": {"batch_size": 4, "max_epochs": 1, "lr": 0.01, "ema_decay": 0.9}}
    cfg = load_config(raw=_merge(raw, {}))
    train(cfg, progress=False)
    return cfg


@pytest.fixture(scope="module")
def test_frames(tmp_path_factory):
    """The first 4 test frames as their own file (the report evaluates a whole file several times)."""
    from ase.io import write

    from hqc_qiskit.data.dataset import load_labelled

    path = tmp_path_factory.mktemp("frames") / "test4.extxyz"
    write(path, load_labelled(TEST_FILE)[:4])
    return path


def test_noisy_model_energy_and_forces_equal_the_backend_parameter_shift(source):
    from hqc_qiskit.checkpoint import initialise_from
    from hqc_qiskit.data.dataset import load_labelled
    from hqc_qiskit.model.potential import build_model
    from hqc_qiskit.quantum.noisy_readout import build_noisy_readouts
    from hqc_qiskit.quantum.shot_forces import estimate_forces

    readout = dict(source.model.readout.model_dump(), engine="noisy", noise_backend="aer-noise:depolarizing")
    model = build_model({**source.model.model_dump(), "readout": readout})
    assert initialise_from(model, source.run_dir()) == [f"readouts.{i}.circuit.{k}" for i in range(2)
                                                         for k in ("coefficients", "built")]
    assert build_noisy_readouts(model) == 2
    model.eval()
    atoms = load_labelled(TEST_FILE)[0]
    est = estimate_forces(model, atoms, make_backend("aer-noise:depolarizing"), shots=None, uncertainty=False)
    # the backend simulates the circuits (shifted copies for the forces); the model contracts its coefficients
    assert abs(est.energy - est.exact_energy) < 1e-9
    scale = np.max(np.abs(est.exact_forces))
    assert scale > 1e-4
    assert np.max(np.abs(est.forces - est.exact_forces)) < 1e-9 * max(scale, 1.0)


def test_noise_aware_cli_trains_only_the_classical_part_and_reports(tmp_path, source, test_frames):
    from typer.testing import CliRunner

    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.cli import app
    from hqc_qiskit.evaluate import evaluate

    out = tmp_path / "tuned"
    args = ["noise-aware", str(source.run_dir()), "--backend", "aer-noise:depolarizing", "--noise-scale", "3",
            "--out", str(out), "--epochs", "2", "--lr", "0.01", "--verify-frames", "1", "--test", str(test_frames),
            "--drift-scales", "1.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    src, tuned = load_model(source.run_dir()), load_model(out)
    assert tuned.config.readout.engine == "noisy" and tuned.config.readout.noise_scale == 3
    for a, b in zip(src.readouts, tuned.readouts):
        assert torch.equal(a.circuit.weight, b.circuit.weight)               # circuits kept
        assert not torch.equal(a.decode.weight, b.decode.weight)            # classical part trained
    assert torch.equal(src.reference_energies, tuned.reference_energies)    # not refitted
    report = json.loads((out / "noise_aware.json").read_text())
    rows = {(r["model"], r["noise_scale"]): r for r in report["rows"]}
    assert set(rows) == {("source", None), ("source", 3), ("source", 1.5), ("noise-aware", 3), ("noise-aware", 1.5),
                         ("noise-aware", None)}
    # the noise matters, and its level too
    errors = [rows[("source", s)]["rmse_e_mev_atom"] for s in (None, 1.5, 3)]
    assert min(abs(a - b) for a, b in zip(errors, errors[1:])) > 1e-3 * max(errors)
    assert report["verify"]["max_energy_difference_mev_atom"] < 1e-6
    assert report["verify"]["max_force_difference_ev_a"] < 1e-8
    # every row re-evaluates from the checkpoint it names
    for row in report["rows"]:
        again = evaluate(row["checkpoint"], test_frames)
        assert again["rmse_e_mev_atom"] == pytest.approx(row["rmse_e_mev_atom"], rel=1e-9)
        assert again["rmse_f_ev_a"] == pytest.approx(row["rmse_f_ev_a"], rel=1e-9)
    assert (out / "noise_aware.png").stat().st_size > 0
    # at a drifted scale the coefficients are simulated at that scale: equal to the backend's own there
    from hqc_qiskit.data.dataset import load_labelled
    from hqc_qiskit.noise_aware import verify_against_backend

    drifted = verify_against_backend(load_model(out / "noise_aware_x1.5.pt"), load_labelled(test_frames)[:1],
                                     make_backend("aer-noise:depolarizing", scale=1.5))
    assert drifted["max_energy_difference_mev_atom"] < 1e-6
    # a second run without --resume/--overwrite refuses to replace it; with --resume it only reports again
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in squashed(again.output)
    (out / "noise_aware.json").unlink()
    again = CliRunner().invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "noise_aware.json").read_text())["rows"] == report["rows"]


def test_retuning_a_noise_aware_model_for_drifted_noise(tmp_path, source, test_frames):
    """`noise-aware` from a noise-aware run (the device drifted): the source row is the source on its own noisy
    readouts, and the re-tuned model starts from its weights with coefficients simulated at the new scale."""
    from typer.testing import CliRunner

    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.cli import app

    common = ["--backend", "aer-noise:depolarizing", "--epochs", "1", "--verify-frames", "0", "--test", str(test_frames)]
    first, second = tmp_path / "tuned", tmp_path / "retuned"
    done = CliRunner().invoke(app, ["noise-aware", str(source.run_dir()), "--noise-scale", "2", "--out", str(first), *common])
    assert done.exit_code == 0, done.output
    done = CliRunner().invoke(app, ["noise-aware", str(first), "--noise-scale", "3", "--out", str(second), *common])
    assert done.exit_code == 0, done.output
    rows = json.loads((second / "noise_aware.json").read_text())["rows"]
    assert (rows[0]["model"], rows[0]["readouts"], rows[0]["noise_scale"]) == ("source", "noisy", 2)
    assert rows[0]["noise_backend"] == "aer-noise:depolarizing"
    from hqc_qiskit.noise_aware import readouts_label

    assert readouts_label(rows[0], "aer-noise:depolarizing") == "noisy"
    assert readouts_label(rows[0], "aer-noise:thermal") == "noisy (depolarizing)"     # a source of another snapshot
    assert readouts_label(rows[-1], "aer-noise:thermal") == "exact"
    before = {(r["model"], r["noise_scale"]): r for r in json.loads((first / "noise_aware.json").read_text())["rows"]}
    assert rows[0]["rmse_e_mev_atom"] == pytest.approx(before[("noise-aware", 2)]["rmse_e_mev_atom"], rel=1e-9)
    tuned, retuned = load_model(first), load_model(second)
    assert retuned.config.readout.noise_scale == 3
    from hqc_qiskit.config import load_config

    assert load_config(second / "config.yaml").name == load_config(first / "config.yaml").name == "tiny_noise_aware"
    for a, b in zip(tuned.readouts, retuned.readouts):
        assert torch.equal(a.circuit.weight, b.circuit.weight)
        assert not torch.equal(a.circuit.coefficients, b.circuit.coefficients)   # simulated again at x3


def test_resumed_noisy_training_does_not_simulate_again(tmp_path, source, monkeypatch):
    from hqc_qiskit import train as train_module
    from hqc_qiskit.noise_aware import noise_aware_config

    cfg = noise_aware_config(source.run_dir(), "aer-noise:depolarizing", tmp_path / "tuned", epochs=1)
    train_module.train(cfg, progress=False)
    calls = []
    monkeypatch.setattr(NoisyCircuit, "build", lambda *a, **k: calls.append(1))
    trainer = train_module.Trainer(cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_epochs": 2})}),
                                   resume=True, progress=False)
    trainer.fit()
    assert calls == [] and trainer.epoch == 2


def test_noisy_config_errors(tiny_config, tmp_path):
    quantum = {"kind": "quantum", "n_qubits": 2, "n_layers": 1}
    with pytest.raises(ConfigError, match="noise_backend"):
        tiny_config(model__readout={**quantum, "engine": "noisy"}, train__init_from=str(tmp_path))
    with pytest.raises(ConfigError, match="noise_backend"):
        tiny_config(model__readout={**quantum, "engine": "noisy", "noise_backend": "aer"}, train__init_from=str(tmp_path))
    with pytest.raises(ConfigError, match="engine 'noisy'"):
        tiny_config(model__readout={**quantum, "noise_backend": "aer-noise:depolarizing"})
    with pytest.raises(ConfigError, match="init_from"):
        tiny_config(model__readout={**quantum, "engine": "noisy", "noise_backend": "aer-noise:depolarizing"})


def test_init_from_names_the_file_when_the_architecture_differs(tmp_path, tiny_config, source):
    from hqc_qiskit.checkpoint import initialise_from
    from hqc_qiskit.config import save_config
    from hqc_qiskit.model.potential import build_model
    from hqc_qiskit.noise_aware import noise_aware_config

    wider = build_model(dict(TINY_MODEL, embedding_dim=12, readout={"kind": "quantum", "n_qubits": 3, "n_layers": 1}))
    with pytest.raises(HQCError, match="best_model.pt: its weights do not fit"):
        initialise_from(wider, source.run_dir())
    classical = tiny_config(output_dir=str(tmp_path / "classical"))
    (tmp_path / "classical").mkdir()
    save_config(classical, tmp_path / "classical" / "config.yaml")     # the config is what is checked
    with pytest.raises(ConfigError, match="quantum readouts"):
        noise_aware_config(classical.run_dir(), "aer-noise:depolarizing", tmp_path / "x")
