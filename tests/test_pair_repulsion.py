"""The optional ZBL pair repulsion (model.pair_repulsion: zbl): its function, its place in the model's energy,
forces and stress, fine-tuning onto it, and the shot-based estimators' exact classical term."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hqc_qiskit.checkpoint import atomic_save, initialise_from, load_model, model_payload
from hqc_qiskit.config import ModelConfig
from hqc_qiskit.model.pair_repulsion import COULOMB_EV_ANGSTROM, ZBLRepulsion
from hqc_qiskit.model.potential import build_model
from tests.conftest import TINY_MODEL
from tests.test_physics import _assert_rotation_covariant, _ef

SI = torch.zeros(1, dtype=torch.long)


def _zbl(r: float) -> tuple[float, float]:
    """Si-Si pair energy (eV) and its derivative (eV/Å) at r Å."""
    x = torch.tensor([r], dtype=torch.float64, requires_grad=True)
    e = ZBLRepulsion(["Si"]).pair_energy(x, SI, SI)
    (de,) = torch.autograd.grad(e.sum(), x)
    return float(e.detach()), float(de)


def test_zbl_is_screened_coulomb_switched_off_at_the_covalent_distance():
    # r -> 0: the bare nuclear Coulomb repulsion Z^2 e^2 / (4 pi eps0 r) (the screening sums to 1 - 3e-5)
    e, _ = _zbl(1e-5)
    assert e == pytest.approx(COULOMB_EV_ANGSTROM * 14**2 / 1e-5, rel=1e-3)
    assert COULOMB_EV_ANGSTROM == pytest.approx(14.3996, abs=1e-4)
    # repulsive and steepening inwards down to the closest pairs seen at 10 GPa
    radii = [1.2, 1.5, 1.59, 1.87, 2.1]
    values = [_zbl(r) for r in radii]
    assert all(e1 > e2 > 0 for (e1, _), (e2, _) in zip(values, values[1:]))
    assert all(de < 0 for _, de in values)
    # energy and force go to zero smoothly at 2 x 1.11 Å (ASE's covalent radius of Si), and stay zero beyond
    for r in (2.2199999, 2.22, 2.5, 4.0):
        e, de = _zbl(r)
        assert abs(e) < 1e-12 and abs(de) < 1e-9
    assert _zbl(2.2)[0] > 1e-5


def _compressed(frame, factor=0.9):
    """A liquid frame compressed so that several pairs are inside the ZBL range (< 2.22 Å)."""
    a = frame.copy()
    a.set_cell(a.cell[:] * factor, scale_atoms=True)
    return a


def _models():
    torch.manual_seed(0)
    base = dict(TINY_MODEL, dtype="float64", reference_energies={"Si": 0.0})
    plain = build_model(ModelConfig(**base))
    with_zbl = build_model(ModelConfig(**base, pair_repulsion="zbl"))
    with_zbl.load_state_dict(plain.state_dict())   # no weights of its own: the same state fits both
    return plain, with_zbl


def test_model_energy_adds_every_close_pair_once(val_frames):
    """E(zbl) - E(plain) = sum over pairs i < j (all periodic images, from ASE's distances, not the model's
    neighbour list) of the pair energy; per-atom energies carry it and report it separately."""
    plain, with_zbl = _models()
    atoms = _compressed(val_frames[0])
    d = atoms.get_all_distances(mic=True)   # the 64-atom cell is over 9 Å wide: one image per pair within 2.22 Å
    i, j = np.triu_indices(len(atoms), k=1)
    r = torch.tensor(d[i, j])
    expected = float(ZBLRepulsion(["Si"]).pair_energy(r, SI.expand(len(r)), SI.expand(len(r))).sum())
    assert expected > 1.0   # not vacuous: the compressed frame has close pairs
    e_plain, f_plain = _ef(plain, atoms)
    e_zbl, f_zbl = _ef(with_zbl, atoms)
    assert e_zbl - e_plain == pytest.approx(expected, rel=1e-10)
    assert np.abs(f_zbl - f_plain).max() > 1.0


def test_zbl_model_is_invariant_and_its_forces_and_stress_are_derivatives(val_frames):
    _, model = _models()
    atoms = _compressed(val_frames[0])
    e, f = _ef(model, atoms)
    _assert_rotation_covariant(model, atoms, e, f, seed=3, atol=1e-9)
    moved = atoms.copy()
    moved.positions += np.array([0.3, -0.7, 1.1])
    assert _ef(model, moved)[0] == pytest.approx(e, abs=1e-9)
    rng = np.random.default_rng(0)
    k = int(np.argmax(np.abs(f).sum(1)))   # the atom with the largest force: in a close pair
    h = 1e-5
    for axis in range(3):
        shifted = [atoms.copy(), atoms.copy()]
        shifted[0].positions[k, axis] += h
        shifted[1].positions[k, axis] -= h
        numeric = -(_ef(model, shifted[0])[0] - _ef(model, shifted[1])[0]) / (2 * h)
        assert numeric == pytest.approx(f[k, axis], abs=1e-6 * max(1.0, abs(f[k, axis])))
    from hqc_qiskit.calculator import HQCCalculator

    atoms.calc = HQCCalculator(model=model)
    sigma = atoms.get_stress(voigt=False)
    x = np.eye(3) + 1e-5 * rng.standard_normal((3, 3))
    x = 0.5 * (x + x.T)   # a symmetric strain: dE = V sigma : eps
    eps = x - np.eye(3)
    deformed = [atoms.copy(), atoms.copy()]
    deformed[0].set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    deformed[1].set_cell(atoms.cell[:] @ (np.eye(3) - eps), scale_atoms=True)
    de = (_ef(model, deformed[0])[0] - _ef(model, deformed[1])[0]) / 2
    assert de == pytest.approx(atoms.get_volume() * np.sum(sigma * eps), rel=1e-4)


def test_config_checks_the_zbl_range_against_the_cutoff():
    with pytest.raises(ValueError, match="reaches 2.22 Å .* beyond the cutoff 2.0 Å; raise model.cutoff"):
        ModelConfig(**dict(TINY_MODEL, cutoff=2.0, pair_repulsion="zbl"))
    with pytest.raises(ValueError, match="pair_repulsion"):
        ModelConfig(**dict(TINY_MODEL, pair_repulsion="lj"))


def test_a_model_without_it_fine_tunes_into_one_and_its_checkpoint_keeps_it(tmp_path, val_frames):
    plain, _ = _models()
    source = tmp_path / "plain.pt"
    atomic_save(model_payload(plain), source)
    target = build_model(ModelConfig(**dict(TINY_MODEL, dtype="float64", pair_repulsion="zbl")))
    assert initialise_from(target, source) == []
    saved = tmp_path / "zbl.pt"
    atomic_save(model_payload(target), saved)
    reloaded = load_model(saved)
    assert reloaded.config.pair_repulsion == "zbl" and reloaded.pair_repulsion is not None
    atoms = _compressed(val_frames[0])
    assert _ef(reloaded, atoms)[0] == pytest.approx(_ef(target, atoms)[0], abs=1e-9)
    assert _ef(reloaded, atoms)[0] - _ef(plain, atoms)[0] > 1.0


def test_shot_based_forces_and_stress_include_the_pair_term_exactly(val_frames):
    """The exact backend through the parameter-shift rule reproduces autograd's forces and stress of a model
    with the ZBL term (which no circuit measures), and the shot-based energy includes it."""
    from hqc_qiskit.quantum.backends import make_backend
    from hqc_qiskit.quantum.shot_forces import estimate_forces

    torch.manual_seed(0)
    model = build_model(dict(TINY_MODEL, readout={"kind": "quantum", "ansatz": "cz", "engine": "exact",
                                                  "n_layers": 1}, dtype="float64", pair_repulsion="zbl")).eval()
    atoms = _compressed(val_frames[0])
    for uncertainty in (True, False):
        est = estimate_forces(model, atoms, make_backend("exact"), stress=True, uncertainty=uncertainty)
        np.testing.assert_allclose(est.forces, est.exact_forces, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(est.stress, est.exact_stress, rtol=1e-8, atol=1e-12)
        assert est.energy == pytest.approx(est.exact_energy, abs=1e-9)
    assert np.abs(est.exact_forces).max() > 1.0   # dominated by the close pairs' repulsion


def test_bad_species_for_zbl_is_a_config_error():
    with pytest.raises(ValueError, match="needs element symbols"):
        ModelConfig(**dict(TINY_MODEL, species=["Xx"], pair_repulsion="zbl"))
