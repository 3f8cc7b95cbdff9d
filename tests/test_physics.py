"""Physics invariants of the potential (classical and quantum readouts), float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hqc_qiskit.config import ModelConfig
from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device
from hqc_qiskit.model.potential import build_model
from tests.conftest import TINY_MODEL

READOUTS = {
    "classical": {"kind": "classical", "hidden": 8},
    "quantum_cz": {"kind": "quantum", "ansatz": "cz", "engine": "exact"},
    "quantum_qft_cx": {"kind": "quantum", "ansatz": "qft_cx", "engine": "exact", "n_qubits": 4, "n_layers": 2},
}


def _model(readout):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY_MODEL, "readout": readout, "dtype": "float64", "reference_energies": {"Si": 0.0}})
    return build_model(cfg)


def _ef(model, atoms):
    out = model(to_device(collate([atoms_to_graph(atoms, model.config.cutoff, model.config.species)]), "cpu", torch.float64))
    return out["energy"].item(), out["forces"].detach().numpy()


def _assert_rotation_covariant(model, atoms, e, f, seed, atol):
    """Rotating everything (cell included) leaves E unchanged and rotates F."""
    rot = Rotation.random(random_state=seed).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ rot.T, scale_atoms=True)
    e_r, f_r = _ef(model, rotated)
    assert e_r == pytest.approx(e, abs=atol)
    np.testing.assert_allclose(f_r, f @ rot.T, atol=atol)


@pytest.fixture(scope="module")
def atoms(val_frames):
    return val_frames[0].copy()


@pytest.mark.parametrize("readout", list(READOUTS))
def test_rotation_translation_permutation_lattice(readout, atoms):
    model = _model(READOUTS[readout])
    e, f = _ef(model, atoms)
    assert np.abs(f).max() > 1e-4  # a model with zero forces would pass every check below
    _assert_rotation_covariant(model, atoms, e, f, seed=7, atol=1e-9)
    # translation
    moved = atoms.copy()
    moved.positions += np.array([0.37, -1.2, 2.9])
    e_t, f_t = _ef(model, moved)
    assert e_t == pytest.approx(e, abs=1e-9)
    np.testing.assert_allclose(f_t, f, atol=1e-9)
    # permutation of atoms
    perm = np.random.default_rng(3).permutation(len(atoms))
    permuted = atoms[perm]
    e_p, f_p = _ef(model, permuted)
    assert e_p == pytest.approx(e, abs=1e-9)
    np.testing.assert_allclose(f_p, f[perm], atol=1e-9)
    # shifting atoms by lattice vectors
    shifted = atoms.copy()
    n = np.random.default_rng(4).integers(-2, 3, size=(len(atoms), 3))
    shifted.positions += n @ atoms.cell[:]
    e_s, f_s = _ef(model, shifted)
    assert e_s == pytest.approx(e, abs=1e-9)
    np.testing.assert_allclose(f_s, f, atol=1e-9)
    # a non-rigid change does change E (the checks above can fail)
    strained = atoms.copy()
    strained.set_cell(atoms.cell[:] * 1.02, scale_atoms=True)
    assert abs(_ef(model, strained)[0] - e) > 1e-6


@pytest.mark.parametrize("readout", list(READOUTS))
def test_forces_are_minus_energy_gradient(readout, atoms):
    model = _model(READOUTS[readout])
    _, f = _ef(model, atoms)
    rng = np.random.default_rng(5)
    h = 1e-5
    for atom, axis in zip(rng.integers(0, len(atoms), 4), rng.integers(0, 3, 4)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        fd = -(_ef(model, plus)[0] - _ef(model, minus)[0]) / (2 * h)
        assert fd == pytest.approx(f[atom, axis], abs=1e-7, rel=1e-5)


def test_energy_smooth_at_cutoff(atoms):
    """Energy is continuous when a neighbour crosses the cutoff (envelope + bias-free radial MLP)."""
    from ase import Atoms

    model = _model(READOUTS["classical"])
    rc = model.config.cutoff
    es = []
    for d in (rc - 1e-6, rc + 1e-6):
        dimer = Atoms("Si2", positions=[[0, 0, 0], [d, 0, 0]], pbc=False)
        es.append(_ef(model, dimer)[0])
    assert es[0] == pytest.approx(es[1], abs=1e-9)


def test_float32_default_dtype(atoms):
    cfg = ModelConfig(**TINY_MODEL)
    model = build_model(cfg)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    out = model(to_device(collate([atoms_to_graph(atoms, 4.5, ["Si"])]), "cpu", torch.float32))
    assert out["energy"].dtype == torch.float32 and out["forces"].dtype == torch.float32


@pytest.mark.slow
def test_paper_architecture_invariances_and_forces(atoms):
    """The paper's full model (runs/cmlp.yaml and runs/hqc_cz.yaml backbones) in float64."""
    from tests.conftest import ROOT

    from hqc_qiskit.config import load_config

    for name in ("cmlp", "hqc_cz"):
        cfg = load_config(ROOT / "runs" / f"{name}.yaml").model.model_copy(update={"dtype": "float64", "reference_energies": {"Si": 0.0}})
        torch.manual_seed(0)
        model = build_model(cfg)
        e, f = _ef(model, atoms)
        _assert_rotation_covariant(model, atoms, e, f, seed=11, atol=1e-8)
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[3, 2] += 1e-5
        minus.positions[3, 2] -= 1e-5
        fd = -(_ef(model, plus)[0] - _ef(model, minus)[0]) / 2e-5
        assert fd == pytest.approx(f[3, 2], abs=1e-6, rel=1e-5)


@pytest.mark.parametrize("impl", ["grouped", "split"])
def test_fast_interaction_equals_e3nn(val_frames, impl):
    """The fast interaction layers ('grouped', the default, and 'split') compute e3nn's operations: same E,
    F and parameter gradients of the force loss as e3nn's own modules, with the paper's irreps (all six
    parities, l <= 3) on a small model; e3nn's state dicts (checkpoints of earlier versions) load into them."""
    from hqc_qiskit.train import loss_fn

    graph = atoms_to_graph(val_frames[0], 4.5, ["Si"], with_labels=True)
    results, state = {}, None
    for name in ("e3nn", impl):
        torch.manual_seed(0)
        cfg = ModelConfig(**{**TINY_MODEL, "hidden_irreps": "4x0e + 4x0o + 4x1o + 4x1e + 2x2o + 2x2e", "lmax": 3,
                             "dtype": "float64", "reference_energies": {"Si": 0.0}, "tensor_product": name})
        model = build_model(cfg)
        if state is None:
            state = model.state_dict()
            with torch.no_grad():   # away from the initial values, so that a mixed-up parameter shows
                for value in state.values():
                    if value.is_floating_point():
                        value.add_(0.1 * torch.randn_like(value))
        model.load_state_dict(state)
        batch = to_device(collate([graph]), "cpu", torch.float64)
        out = model(batch, compute_forces=True, create_graph=True)
        loss_fn(out, batch, 1.0, 100.0).backward()
        results[name] = (out["energy"].item(), out["forces"].detach().numpy(),
                         {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (e1, f1, g1), (e2, f2, g2) = results[impl], results["e3nn"]
    assert e1 == pytest.approx(e2, abs=1e-10)
    np.testing.assert_allclose(f1, f2, atol=1e-10)
    assert g1.keys() == g2.keys() and len(g1) > 10
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], atol=1e-9, rtol=1e-7)


def test_last_layer_computes_only_what_the_readouts_read(val_frames):
    """The last interaction layer runs only its edge paths that end in 0e (the readouts read nothing
    else); E, F and every parameter gradient of the force loss equal those of the full layer."""
    from hqc_qiskit.train import loss_fn

    torch.manual_seed(1)
    cfg = ModelConfig(**{**TINY_MODEL, "hidden_irreps": "4x0e + 4x0o + 4x1o + 4x1e + 2x2o + 2x2e", "lmax": 2,
                         "dtype": "float64", "reference_energies": {"Si": 0.0}})
    model = build_model(cfg)
    assert [layer.scalar_output_only for layer in model.layers] == [False] * (cfg.n_layers - 1) + [True]
    last = model.layers[-1]
    assert len(last.radial_columns_0e) < last.radial.hs[-1] / 3      # most radial weights are skipped
    batch = to_device(collate([atoms_to_graph(val_frames[0], 4.5, ["Si"], with_labels=True)]), "cpu", torch.float64)
    results = {}
    for pruned in (True, False):
        last.scalar_output_only = pruned
        model.zero_grad()
        out = model(batch, compute_forces=True, create_graph=True)
        loss_fn(out, batch, 1.0, 100.0).backward()
        results[pruned] = (out["energy"].detach(), out["forces"].detach(),
                           {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (e1, f1, g1), (e0, f0, g0) = results[True], results[False]
    torch.testing.assert_close(e1, e0, atol=1e-10, rtol=0)
    torch.testing.assert_close(f1, f0, atol=1e-10, rtol=0)
    assert g1.keys() == g0.keys()
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("readout", ["classical", "quantum_cz"])
def test_stress_is_the_strain_derivative_and_rotates(readout, atoms):
    """Stress (ASE sign and Voigt order, eV/Å^3) = (1/V) dE/dε by finite differences of cell deformations
    (ASE's numerical-stress recipe), symmetric, rotated as R σ R^T; batched equals one at a time."""
    from ase.calculators.calculator import PropertyNotImplementedError
    from ase.stress import voigt_6_to_full_3x3_stress

    from hqc_qiskit.calculator import HQCCalculator

    model = _model(READOUTS[readout])
    a = atoms.copy()
    a.calc = HQCCalculator(model=model)
    a.get_forces()
    assert "stress" not in a.calc.results   # not computed until asked for (MD at fixed cell does not pay for it)
    sigma = voigt_6_to_full_3x3_stress(a.get_stress())
    a.positions[0] += 0.01
    a.get_forces()
    assert "stress" in a.calc.results       # from then on with every force call (a barostat needs both)
    scale = np.abs(sigma).max()
    assert scale > 1e-7   # an untrained tiny model: small stresses, so tolerances are relative to them
    h, volume = 1e-5, a.get_volume()
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (1, -1):
                x = np.eye(3)
                x[i, j] += sign * h
                deformed = atoms.copy()
                deformed.set_cell(atoms.cell[:] @ x, scale_atoms=True)
                energies.append(_ef(model, deformed)[0])
            assert (energies[0] - energies[1]) / (2 * h * volume) == pytest.approx(sigma[i, j], abs=1e-5 * scale)
    rot = Rotation.random(random_state=11).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ rot.T, scale_atoms=True)
    rotated.calc = HQCCalculator(model=model)
    np.testing.assert_allclose(rotated.get_stress(voigt=False), rot @ sigma @ rot.T, atol=1e-9 * scale)
    other = atoms.copy()
    other.set_cell(atoms.cell[:] * 1.03, scale_atoms=True)
    batch = to_device(collate([atoms_to_graph(s, model.config.cutoff, model.config.species) for s in (atoms, other)]),
                      "cpu", torch.float64)
    stress = model(batch, compute_stress=True)["stress"].detach().numpy()
    np.testing.assert_allclose(stress[0], sigma, atol=1e-10 * scale)
    other.calc = HQCCalculator(model=model)
    assert np.abs(stress[1] - stress[0]).max() > 0.01 * scale   # the strained copy has another stress
    np.testing.assert_allclose(stress[1], other.get_stress(voigt=False), atol=1e-10 * scale)
    molecule = atoms[:8]
    molecule.pbc, molecule.cell = False, None
    molecule.calc = HQCCalculator(model=model)
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        molecule.get_stress()
    assert np.isfinite(molecule.get_potential_energy())
