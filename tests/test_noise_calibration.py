"""Fitting a noise snapshot's scale to measured expectation values (noise_calibration.py, `hqc-qiskit noise-calibrate`).

The "device" is a simulator whose true scale is known: the fit must find it within its standard error, the
chi2 must be consistent with shot noise when the model family is right, and must reject a device whose noise
differs in kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DATA, TINY_MODEL, squashed

from hqc_qiskit.errors import ConfigError
from hqc_qiskit.noise_calibration import calibrate, calibration_batch, fit_scale, snapshot_expectations
from hqc_qiskit.quantum.backends import ZSamples, make_backend, stats_from_distribution

TEST_FILE = DATA / "si_liquid_3000K.test.extxyz.gz"
SNAPSHOT = "aer-noise:fake_brisbane@ibm_eagle_compact"


@pytest.fixture(scope="module")
def model():
    """An untrained tiny HQC model (cz, 3 qubits, 1 layer, float64): its circuits and their inputs are what count."""
    from hqc_qiskit.model.potential import build_model

    torch.manual_seed(0)
    return build_model(dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": "cz", "n_qubits": 3, "n_layers": 1},
                            dtype="float64")).eval()


@pytest.fixture(scope="module")
def frames():
    from hqc_qiskit.data.dataset import read_structures

    return read_structures(TEST_FILE)[:1]


def test_calibration_batch_draws_the_models_own_circuits(model, frames):
    from hqc_qiskit.quantum.estimate import readout_problem

    full = readout_problem(model, frames[0]).batch
    batch = calibration_batch(model, frames, 5, np.random.default_rng(0))
    assert len(batch.groups) == len(full.groups) and len(batch) == 5 * len(full.groups)
    for (x, w), (x_all, w_all) in zip(batch.groups, full.groups):
        assert np.array_equal(w, w_all)
        assert all(any(np.array_equal(row, r) for r in x_all) for row in x)   # inputs the model produces
    assert len(calibration_batch(model, frames, 10**6, np.random.default_rng(0))) == len(full)


def test_fit_is_exact_without_shot_noise(model, frames):
    """Measured values equal to the snapshot at scale 1.7 (tiny covariance): the fit finds 1.7."""
    batch = calibration_batch(model, frames, 8, np.random.default_rng(1))
    probs = make_backend(SNAPSHOT, scale=1.7).distributions(batch)
    mean, cov = stats_from_distribution(probs, batch.n_qubits)
    samples = ZSamples(mean, cov, np.full(len(batch), 1e6))
    fit = fit_scale(samples, batch, SNAPSHOT)
    assert fit["fitted_scale"] == pytest.approx(1.7, abs=1e-3)
    assert fit["chi2"] < 1e-3 < fit["chi2_at_scale_1"]
    assert fit["dof"] == len(batch) * batch.n_qubits - 1


@pytest.mark.parametrize("true_scale", [0.6, 1.3])
def test_fit_recovers_a_drifted_scale_within_its_standard_error(model, frames, true_scale):
    device = make_backend(SNAPSHOT, scale=true_scale)
    fit = calibrate(model, frames, device, SNAPSHOT, shots=20000, per_readout=16, rng=np.random.default_rng(2))
    assert fit["stderr"] < 0.1
    assert abs(fit["fitted_scale"] - true_scale) < 4 * fit["stderr"]
    assert fit["p_value"] > 1e-3                               # the right model family: chi2 ~ its dof
    assert fit["chi2"] < fit["chi2_at_scale_1"]
    assert fit["rms_residual"] == pytest.approx(fit["rms_shot_noise"], rel=0.3)


def test_a_device_with_other_noise_is_rejected_by_the_chi2(model, frames):
    """Relaxation (thermal) measured against a depolarizing-only snapshot: no scale makes them agree."""
    device = make_backend("aer-noise:thermal@ibm_eagle_compact")
    fit = calibrate(model, frames, device, "aer-noise:depolarizing@ibm_eagle_compact", shots=200000, per_readout=16,
                    rng=np.random.default_rng(3))
    assert fit["p_value"] < 1e-6 and fit["reduced_chi2"] > 2


def test_calibration_refuses_what_it_cannot_fit(model, frames):
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="mitigation"):
        calibrate(model, frames, make_backend(SNAPSHOT, mitigation="rem"), SNAPSHOT, 1000, 2, rng)
    with pytest.raises(ConfigError, match="shots"):
        calibrate(model, frames, make_backend("exact"), SNAPSHOT, 1000, 2, rng)
    with pytest.raises(ConfigError, match="aer-noise"):
        snapshot_expectations("aer", calibration_batch(model, frames, 2, rng), 1.0)
    with pytest.raises(ConfigError, match="upper end"):
        calibrate(model, frames, make_backend(SNAPSHOT, scale=14.0), SNAPSHOT, 100000, 4, rng)


def test_a_strongly_drifted_device_is_found_beyond_the_first_scan(model, frames):
    fit = calibrate(model, frames, make_backend(SNAPSHOT, scale=4.2), SNAPSHOT, 100000, 8, np.random.default_rng(4))
    assert abs(fit["fitted_scale"] - 4.2) < 4 * fit["stderr"] and fit["scan"][-1][0] > 4.2


def _save_noisy(model, path, **readout):
    """``model`` with noisy readouts (``readout``: noise_backend, noise_scale; coefficients simulated) saved to
    ``path``; returns it."""
    from hqc_qiskit.checkpoint import atomic_save, model_payload
    from hqc_qiskit.model.potential import build_model
    from hqc_qiskit.quantum.noisy_readout import build_noisy_readouts

    config = model.config.model_dump()
    noisy = build_model({**config, "readout": {**config["readout"], "engine": "noisy", **readout}})
    noisy.load_state_dict(model.state_dict(), strict=False)
    build_noisy_readouts(noisy)
    atomic_save(model_payload(noisy), path)
    return path


@pytest.fixture(scope="module")
def noisy_checkpoint(model, tmp_path_factory):
    """The tiny model with noisy readouts on the depolarizing snapshot at 0.5, as a checkpoint file."""
    return _save_noisy(model, tmp_path_factory.mktemp("noisy") / "noisy.pt", noise_backend="aer-noise:depolarizing",
                       noise_scale=0.5)


def test_cli_fits_the_models_own_snapshot_and_writes_its_report(noisy_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from hqc_qiskit.cli import app

    out = tmp_path / "cal"
    args = ["noise-calibrate", str(noisy_checkpoint), "--backend", "aer-noise:depolarizing", "--noise-scale", "2",
            "--structure", str(TEST_FILE), "--circuits", "12", "--shots", "50000", "--seed", "5", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "noise_calibration.json").read_text())
    assert report["noise_model"] == "aer-noise:depolarizing"             # the model's own, by default
    assert abs(report["fitted_scale"] - 2.0) < 4 * report["stderr"]
    assert report["circuits"] == 24 and report["total_shots"] == 24 * 50000
    assert (out / "noise_calibration.png").stat().st_size > 0
    text = squashed(result.output)
    assert squashed(f"--noise-scale {report['fitted_scale']:.3f}") in text and squashed("trained at x0.5") in text
    # the same seed measures the same circuits with the same shot noise
    again = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "again")])
    assert again.exit_code == 0
    assert json.loads((tmp_path / "again" / "noise_calibration.json").read_text())["fitted_scale"] == report["fitted_scale"]
    # a finished calibration is not replaced by accident (on hardware it cost QPU time)
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and "--overwrite" in squashed(refused.output)
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_cli_errors_name_what_is_missing(tmp_path):
    from typer.testing import CliRunner

    from hqc_qiskit.checkpoint import atomic_save, model_payload
    from hqc_qiskit.cli import app
    from hqc_qiskit.model.potential import build_model

    exact = build_model(dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": "cz", "n_qubits": 3, "n_layers": 1}))
    atomic_save(model_payload(exact), tmp_path / "exact.pt")
    run = CliRunner().invoke(app, ["noise-calibrate", str(tmp_path / "exact.pt"), "--backend", SNAPSHOT,
                                   "--structure", str(TEST_FILE)])
    assert run.exit_code != 0 and "--noise-model" in squashed(run.output)
    run = CliRunner().invoke(app, ["noise-calibrate", str(tmp_path / "exact.pt"), "--backend", SNAPSHOT,
                                   "--noise-model", SNAPSHOT])
    assert run.exit_code != 0 and "--structure" in squashed(run.output)
    run = CliRunner().invoke(app, ["noise-calibrate", str(tmp_path / "exact.pt"), "--backend", SNAPSHOT,
                                   "--noise-model", SNAPSHOT, "--structure", str(TEST_FILE), "--frames", "999"])
    assert run.exit_code != 0 and "999" in squashed(run.output)


def test_runtime_device_runs_on_the_snapshots_qubits_by_default(model, frames, tmp_path):
    """Through qiskit-ibm-runtime's local mode (the hardware path) the circuits are compiled with the noise
    model's profile unless told otherwise, and the compact snapshot describes the full-device simulation."""
    from typer.testing import CliRunner

    from hqc_qiskit.cli import app

    checkpoint = _save_noisy(model, tmp_path / "noisy.pt", noise_backend=SNAPSHOT)
    out = tmp_path / "cal"
    result = CliRunner().invoke(app, ["noise-calibrate", str(checkpoint), "--backend", "fake_brisbane",
                                      "--structure", str(TEST_FILE), "--circuits", "2", "--shots", "20000",
                                      "--seed", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "noise_calibration.json").read_text())
    assert report["backend"] == "fake_brisbane" and report["backend_profile"] == "ibm_eagle_compact"
    assert report["backend_noise_scale"] is None
    assert abs(report["fitted_scale"] - 1.0) < 4 * report["stderr"] and report["p_value"] > 1e-3
