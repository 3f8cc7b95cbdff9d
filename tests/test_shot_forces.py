"""Shot-based forces and stress by the parameter-shift rule (hqc_qiskit.quantum.shot_forces)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.errors import ConfigError
from hqc_qiskit.quantum.backends import make_backend
from hqc_qiskit.quantum.circuits import ansatz_names
from hqc_qiskit.quantum.circuit_inputs import input_jacobian, input_vjps
from hqc_qiskit.quantum.shot_forces import estimate_forces, force_problem, force_shots, shifted_inputs

from tests.conftest import DATA, tiny_hqc_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, path = tiny_hqc_checkpoint(tmp_path_factory.mktemp("shot_forces"))
    atoms = read_structures(DATA / "si_liquid_3000K.test.extxyz.gz")[0]
    return model.eval(), path, atoms


def test_shifted_inputs_layout():
    x = np.arange(6.0).reshape(2, 3)
    s = shifted_inputs(x).reshape(2, 3, 2, 3)             # [circuit][input q][+, -][qubit]
    for k in range(2):
        for q in range(3):
            for sign, j in ((1, 0), (-1, 1)):
                expected = x[k].copy()
                expected[q] += sign * np.pi / 2
                np.testing.assert_array_equal(s[k, q, j], expected)


def test_exact_backend_reproduces_autograd_forces_and_stress(tiny):
    """Without shot noise the shift rule + input Jacobian gives the exact engine's forces and stress."""
    model, _, atoms = tiny
    est = estimate_forces(model, atoms, make_backend("exact"), stress=True)
    np.testing.assert_allclose(est.forces, est.exact_forces, rtol=1e-8, atol=1e-13)
    np.testing.assert_allclose(est.stress, est.exact_stress, rtol=1e-8, atol=1e-15)
    assert est.energy == pytest.approx(est.exact_energy, abs=1e-9)
    assert np.all(est.forces_stderr == 0) and np.all(est.stress_stderr == 0) and est.stderr == 0
    assert np.abs(est.exact_forces).max() > 1e-5          # not vacuous: the (untrained) tiny model has forces
    no_errors = estimate_forces(model, atoms, make_backend("exact"), stress=True, uncertainty=False)
    np.testing.assert_allclose(no_errors.forces, est.forces, rtol=1e-8, atol=1e-13)
    np.testing.assert_allclose(no_errors.stress, est.stress, rtol=1e-8, atol=1e-15)
    assert no_errors.forces_stderr is None and no_errors.stress_stderr is None


def test_input_jacobian_matches_finite_differences(tiny):
    """J (forward-mode, chunked) against central differences of the circuit inputs along a random direction;
    the parameters' requires_grad is as it was afterwards."""
    from hqc_qiskit.quantum.circuit_inputs import _circuit_inputs_fn, structure_graph

    model, _, atoms = tiny
    model.requires_grad_(True)
    jac = input_jacobian(model, atoms, stress=True, chunk=7)
    assert all(p.requires_grad for p in model.parameters())
    fn, z = _circuit_inputs_fn(model, structure_graph(model, atoms), stress=True)
    direction = torch.as_tensor(np.random.default_rng(0).normal(size=z.numel()), dtype=z.dtype)
    h = 1e-5
    with torch.no_grad():
        fd = ((fn(z + h * direction) - fn(z - h * direction)) / (2 * h)).reshape(-1).numpy()
    np.testing.assert_allclose(jac @ direction.numpy(), fd, atol=1e-7)
    np.testing.assert_allclose(input_jacobian(model, atoms, stress=True), jac, atol=1e-13)   # default chunk


def test_aer_forces_scatter_as_their_standard_errors(tiny):
    """With shots the forces scatter around the exact ones by their predicted standard errors (z-scores of
    192 components: RMS near 1, none beyond 5); a seed repeats the estimate; skipping the errors changes
    nothing else."""
    model, _, atoms = tiny
    aer = make_backend("aer")
    est = estimate_forces(model, atoms, aer, shots=300, rng=np.random.default_rng(5))
    z = (est.forces - est.exact_forces) / est.forces_stderr
    assert np.abs(z).max() < 5
    assert 0.75 < np.sqrt(np.mean(z ** 2)) < 1.3
    again = estimate_forces(model, atoms, aer, shots=300, rng=np.random.default_rng(5), uncertainty=False)
    np.testing.assert_allclose(again.forces, est.forces, atol=1e-12)
    assert est.circuits == 128 * 17 and est.shots == 300 * 128 * 17


def test_noise_estimate_without_the_jacobian_is_unbiased(tiny):
    """The one-probe estimate of the mean force-noise variance (no Jacobian) averages to the exact mean of
    the squared standard errors, and to the realized noise; the exact backend has none."""
    model, _, atoms = tiny
    aer, rng = make_backend("aer"), np.random.default_rng(11)
    fp = force_problem(model, atoms)
    with_errors = estimate_forces(model, atoms, aer, 300, rng=rng, problem=fp)
    exact_mean = with_errors.force_noise_var
    assert exact_mean == pytest.approx(np.mean(with_errors.forces_stderr ** 2), rel=1e-12)
    probe = force_problem(model, atoms, uncertainty=False)
    runs = [estimate_forces(model, atoms, aer, 300, rng=rng, problem=probe) for _ in range(16)]
    estimates = np.array([r.force_noise_var for r in runs])
    realized = np.array([np.mean((r.forces - r.exact_forces) ** 2) for r in runs])
    # each is a random estimate of the right mean (the tiny model's force noise is strongly correlated between
    # atoms, so one probe scatters by about 30%: 16 probes by about 7%; a wrong factor would be 2 or 4)
    assert np.std(estimates) > 0.02 * exact_mean
    assert np.mean(estimates) == pytest.approx(exact_mean, rel=0.25)
    assert np.mean(realized) == pytest.approx(exact_mean, rel=0.25)
    assert estimate_forces(model, atoms, make_backend("exact"), problem=probe).force_noise_var == 0
    g = np.random.default_rng(0).normal(size=(2, len(fp.energy.batch), fp.shifted.n_qubits))
    for stress in (False, True):   # the vjps are J^T g exactly
        jac = input_jacobian(model, atoms, stress=stress)
        for got, gi in zip(input_vjps(model, atoms, list(g), stress), g):
            np.testing.assert_allclose(got, jac.T @ gi.reshape(-1), rtol=1e-9, atol=1e-14)


def test_optimal_allocation_spends_the_same_shots_for_smaller_errors(tiny):
    model, _, atoms = tiny
    fp = force_problem(model, atoms)
    uniform, optimal = force_shots(fp, 400, "uniform"), force_shots(fp, 400, "optimal")
    assert uniform.sum() == optimal.sum() == 400 * len(fp.combined)
    assert not np.array_equal(uniform, optimal)
    aer = make_backend("aer")
    errs = {a: np.sum(estimate_forces(model, atoms, aer, 400, a, np.random.default_rng(0), problem=fp).forces_stderr ** 2)
            for a in ("uniform", "optimal")}
    assert errs["optimal"] < errs["uniform"]


def test_stress_needs_a_periodic_structure(tiny):
    model, _, atoms = tiny
    molecule = atoms[:4]
    molecule.pbc = False
    with pytest.raises(ConfigError, match="periodic"):
        estimate_forces(model, molecule, make_backend("exact"), stress=True)
    fp = force_problem(model, atoms, stress=False, uncertainty=False)
    with pytest.raises(ConfigError, match="stress=False"):
        estimate_forces(model, atoms, make_backend("exact"), stress=True, problem=fp)


def test_cli_energy_with_forces_and_stress(tiny, tmp_path):
    from typer.testing import CliRunner

    from hqc_qiskit.cli import app

    _, path, _ = tiny
    out = tmp_path / "f.json"
    args = ["energy", str(path), "--structure", str(DATA / "si_liquid_3000K.test.extxyz.gz"), "--backend", "aer",
            "--shots", "200", "--seed", "1", "--stress", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "forces: RMS difference" in result.output and "stress (GPa" in result.output
    data = json.loads(out.read_text())
    assert np.array(data["forces"]).shape == (64, 3) and np.array(data["stress_stderr"]).shape == (3, 3)
    dry = CliRunner().invoke(app, args[:-2] + ["--dry-run"])
    assert dry.exit_code == 0 and f"circuits: {128 * 17}" in " ".join(dry.output.split())


@pytest.mark.parametrize("ansatz", ansatz_names())
def test_shift_rule_is_exact_for_every_ansatz(ansatz):
    """Every ansatz embeds its inputs through one RY per qubit, so the shift rule holds for all of them."""
    from hqc_qiskit.model.potential import build_model

    from tests.conftest import TINY_MODEL

    torch.manual_seed(0)
    model = build_model(dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": ansatz, "engine": "exact", "n_layers": 1},
                             dtype="float64")).eval()
    atoms = read_structures(DATA / "si_liquid_3000K.test.extxyz.gz")[0][:20]
    est = estimate_forces(model, atoms, make_backend("exact"), uncertainty=False)
    np.testing.assert_allclose(est.forces, est.exact_forces, rtol=1e-8, atol=1e-13)
