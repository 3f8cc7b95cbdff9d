"""CP2K import: units, wrapping, cell input, and every bad-input error naming file, frame and field."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from ase.units import Bohr, Hartree

from hqc_qiskit.data.cp2k import import_cp2k, parse_cell_lengths, read_cp2k_cell, read_cp2k_xyz
from hqc_qiskit.data.dataset import load_labelled, split_file, split_indices, write_structures
from hqc_qiskit.errors import DataError

CELL = np.diag([5.0, 5.0, 5.0])


def _write_xyz(path, frames, gz=False):
    """frames: list of (symbols, (n,3) values, step, energy or None)."""
    lines = []
    for symbols, values, step, energy in frames:
        lines.append(f"{len(symbols)}")
        lines.append(f" i = {step}, time = {step * 0.5:.3f}, E = {energy}" if energy is not None else " i = 1, time = 0.5")
        lines += [f" {s} {v[0]:.10f} {v[1]:.10f} {v[2]:.10f}" for s, v in zip(symbols, values)]
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _pair(tmp_path, n_frames=2, gz=False, **changes):
    rng = np.random.default_rng(0)
    pos = [(["Si", "Si"], rng.uniform(-6, 12, (2, 3)), 20 * k, -7.5 - 0.01 * k) for k in range(n_frames)]
    frc = [(["Si", "Si"], rng.normal(0, 0.02, (2, 3)), 20 * k, -7.5 - 0.01 * k) for k in range(n_frames)]
    for key, fn in changes.items():
        (pos if key.startswith("pos") else frc)[:] = fn(pos if key.startswith("pos") else frc)
    suffix = ".xyz.gz" if gz else ".xyz"
    return _write_xyz(tmp_path / f"p{suffix}", pos, gz), _write_xyz(tmp_path / f"f{suffix}", frc, gz), pos, frc


@pytest.mark.parametrize("gz", [False, True])
def test_units_and_wrapping(tmp_path, gz):
    p, f, pos, frc = _pair(tmp_path, gz=gz)
    frames = import_cp2k(p, f, CELL)
    assert len(frames) == 2
    for atoms, (_, xyz, _, e), (_, fv, _, _) in zip(frames, pos, frc):
        assert atoms.get_potential_energy() == pytest.approx(e * Hartree, rel=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), fv * Hartree / Bohr, rtol=1e-7)
        assert np.all(atoms.get_scaled_positions(wrap=False) >= 0) and np.all(atoms.get_scaled_positions(wrap=False) < 1)
        # wrapping moves atoms by lattice vectors only
        shift = (atoms.positions - xyz) / 5.0
        np.testing.assert_allclose(shift, np.round(shift), atol=1e-9)
    other = import_cp2k(p, f, CELL, force_unit="hartree/angstrom")
    np.testing.assert_allclose(other[0].get_forces(), frc[0][1] * Hartree, rtol=1e-7)


def test_roundtrip_extxyz_and_split(tmp_path):
    p, f, _, _ = _pair(tmp_path, n_frames=10)
    frames = import_cp2k(p, f, CELL)
    out = tmp_path / "d.extxyz.gz"
    write_structures(out, frames)
    back = load_labelled(out)
    assert len(back) == 10
    np.testing.assert_allclose(back[3].get_forces(), frames[3].get_forces())
    assert back[3].get_potential_energy() == pytest.approx(frames[3].get_potential_energy())
    paths = split_file(out, [6, 2, 2], seed=3)
    parts = [load_labelled(x) for x in paths]
    assert [len(x) for x in parts] == [6, 2, 2]
    energies = sorted(a.get_potential_energy() for part in parts for a in part)
    assert energies == pytest.approx(sorted(a.get_potential_energy() for a in frames))
    assert all(np.array_equal(a, b) for a, b in zip(split_indices(10, [6, 2, 2], 3), split_indices(10, [6, 2, 2], 3)))
    assert not np.array_equal(split_indices(10, [6, 2, 2], 3)[0], split_indices(10, [6, 2, 2], 4)[0])
    # a second split would change the files runs were trained on: refused unless overwrite
    with pytest.raises(DataError, match=r"d\.extxyz\.gz: split files exist next to it \(d\.train\.extxyz\.gz, d\.val"):
        split_file(out, [5, 3, 2], seed=4)
    assert [len(load_labelled(x)) for x in paths] == [6, 2, 2]
    assert [len(load_labelled(x)) for x in split_file(out, [5, 3, 2], seed=4, overwrite=True)] == [5, 3, 2]


def test_cell_from_input_and_lengths(tmp_path):
    inp = tmp_path / "x.inp"
    inp.write_text("&FORCE_EVAL\n &SUBSYS\n  &CELL\n   A 10.0 0 0\n   B 0 11.0 0\n   C 0 0 12.0\n  &END CELL\n &END SUBSYS\n&END\n")
    np.testing.assert_allclose(read_cp2k_cell(inp), np.diag([10.0, 11.0, 12.0]))
    inp.write_text("&CELL\n ABC 9.0 9.5 10.0\n&END CELL\n")
    np.testing.assert_allclose(read_cp2k_cell(inp), np.diag([9.0, 9.5, 10.0]))
    np.testing.assert_allclose(parse_cell_lengths("10.862"), np.eye(3) * 10.862)
    np.testing.assert_allclose(parse_cell_lengths("1,2,3"), np.diag([1.0, 2.0, 3.0]))
    inp.write_text("&GLOBAL\n&END GLOBAL\n")
    with pytest.raises(DataError, match="x.inp.*CELL"):
        read_cp2k_cell(inp)
    with pytest.raises(DataError, match="--cell"):
        parse_cell_lengths("1,2")


def test_shipped_cp2k_input_cell():
    from tests.conftest import ROOT

    shared = ROOT.parent / "shared" / "data" / "si_liquid_3000K" / "cp2k.inp"
    if not shared.exists():
        pytest.skip("../shared not beside the checkout")
    np.testing.assert_allclose(read_cp2k_cell(shared), np.eye(3) * 10.862)


def _nan_force(frames):
    frames[1][1][0, 2] = np.nan
    return frames


def _extra_atom(frames):
    s, v, st, e = frames[1]
    frames[1] = (s + ["Si"], np.vstack([v, v[:1]]), st, e)
    return frames


def _unknown_element(frames):
    s, v, st, e = frames[1]
    frames[1] = (["Si", "Xx"], v, st, e)
    return frames


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"frc": lambda fr: fr[:1]}, r"f\.xyz, field 'n_frames': 1 frames, but .*p\.xyz has 2"),
        ({"frc": _nan_force}, r"f\.xyz, frame 1, field 'forces': non-finite"),
        ({"frc": _extra_atom}, r"f\.xyz, frame 1, field 'n_atoms'"),
        ({"pos": _unknown_element, "frc": _unknown_element}, r"p\.xyz, frame 1, field 'symbols'.*Xx"),
        ({"pos": lambda fr: [(s, v, st, None) for s, v, st, e in fr], "frc": lambda fr: [(s, v, st, None) for s, v, st, e in fr]},
         r"p\.xyz, frame 0, field 'energy'"),
    ],
)
def test_import_errors_name_file_frame_field(tmp_path, changes, pattern):
    p, f, _, _ = _pair(tmp_path, **changes)
    with pytest.raises(DataError, match=pattern):
        import_cp2k(p, f, CELL)


def test_import_missing_file_and_cell(tmp_path):
    p, f, _, _ = _pair(tmp_path)
    with pytest.raises(DataError, match=r"nope\.xyz: file does not exist"):
        import_cp2k(p, tmp_path / "nope.xyz", CELL)
    with pytest.raises(DataError, match="cell"):
        import_cp2k(p, f, np.zeros((3, 3)))


def test_truncated_file(tmp_path):
    path = tmp_path / "t.xyz"
    path.write_text("3\n i = 1, E = -1.0\nSi 0 0 0\n")
    with pytest.raises(DataError, match=r"t\.xyz, frame 0, field 'n_atoms': file ends"):
        read_cp2k_xyz(path)


def test_load_labelled_errors(tmp_path, val_frames):
    from ase.calculators.singlepoint import SinglePointCalculator

    good = [a.copy() for a in val_frames[:3]]
    for a, src in zip(good, val_frames[:3]):
        a.calc = SinglePointCalculator(a, energy=src.get_potential_energy(), forces=src.get_forces())
    path = tmp_path / "ok.extxyz"
    write_structures(path, good)
    assert len(load_labelled(path)) == 3
    # custom keys
    custom = [a.copy() for a in val_frames[:2]]
    for a, src in zip(custom, val_frames[:2]):
        a.info["REF_energy"] = src.get_potential_energy()
        a.arrays["REF_forces"] = src.get_forces()
    write_structures(tmp_path / "custom.extxyz", custom)
    loaded = load_labelled(tmp_path / "custom.extxyz", energy_key="REF_energy", forces_key="REF_forces")
    np.testing.assert_allclose(loaded[1].get_forces(), val_frames[1].get_forces())
    with pytest.raises(DataError, match=r"custom\.extxyz, frame 0, field 'energy': no energy label"):
        load_labelled(tmp_path / "custom.extxyz")
    with pytest.raises(DataError, match=r"ok\.extxyz, frame 0, field 'symbols'.*not in the model's species"):
        load_labelled(path, species=["C"])
    # forces missing in one frame
    nof = [a.copy() for a in val_frames[:2]]
    nof[0].calc = SinglePointCalculator(nof[0], energy=-1.0, forces=val_frames[0].get_forces())
    nof[1].calc = SinglePointCalculator(nof[1], energy=-1.0)
    write_structures(tmp_path / "nof.extxyz", nof)
    with pytest.raises(DataError, match=r"nof\.extxyz, frame 1, field 'forces': no forces"):
        load_labelled(tmp_path / "nof.extxyz")
    # NaN energy
    bad = [a.copy() for a in val_frames[:2]]
    for a in bad:
        a.calc = SinglePointCalculator(a, energy=float("nan"), forces=val_frames[0].get_forces())
    write_structures(tmp_path / "nan.extxyz", bad)
    with pytest.raises(DataError, match=r"nan\.extxyz, frame 0, field 'energy'"):
        load_labelled(tmp_path / "nan.extxyz")
    # periodic without a cell
    nocell = good[0].copy()
    nocell.calc = SinglePointCalculator(nocell, energy=-1.0, forces=good[0].get_forces())
    nocell.set_cell(np.zeros((3, 3)))
    nocell.pbc = True
    write_structures(tmp_path / "nocell.extxyz", [nocell])
    with pytest.raises(DataError, match=r"nocell\.extxyz.*cell"):
        load_labelled(tmp_path / "nocell.extxyz")
    with pytest.raises(DataError, match="missing.xyz: file does not exist"):
        load_labelled(tmp_path / "missing.xyz")


def _labelled_copy(frame, **changes):
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = frame.copy()
    for name, value in changes.items():
        setattr(atoms, name, value)
    atoms.calc = SinglePointCalculator(atoms, energy=frame.get_potential_energy(), forces=frame.get_forces())
    return atoms


def test_load_labelled_refuses_broken_geometry(tmp_path, val_frames):
    """Coinciding atoms (NaN energies downstream), absurdly close ones (units) and mixed pbc are named."""
    positions = val_frames[0].positions.copy()
    positions[5] = positions[2]
    write_structures(tmp_path / "dup.extxyz", [_labelled_copy(val_frames[1]), _labelled_copy(val_frames[0], positions=positions)])
    with pytest.raises(DataError, match=r"dup\.extxyz, frame 1, field 'positions': atoms 2 and 5 are 0\.000 Å apart"):
        load_labelled(tmp_path / "dup.extxyz")
    nm = _labelled_copy(val_frames[0], positions=val_frames[0].positions / 10, cell=val_frames[0].cell / 10)
    write_structures(tmp_path / "nm.extxyz", [nm])
    with pytest.raises(DataError, match=r"nm\.extxyz, frame 0, field 'positions': .* Å apart .*not in Å"):
        load_labelled(tmp_path / "nm.extxyz")
    write_structures(tmp_path / "slab.extxyz", [_labelled_copy(val_frames[0], pbc=[True, True, False])])
    with pytest.raises(DataError, match=r"slab\.extxyz, frame 0, field 'pbc': mixed periodic"):
        load_labelled(tmp_path / "slab.extxyz")


def test_coinciding_atoms_are_an_error_not_nan(val_frames):
    from hqc_qiskit.data.graph import atoms_to_graph

    atoms = val_frames[0].copy()
    atoms.positions[7] = atoms.positions[3] + atoms.cell[0]   # a periodic image of atom 3
    with pytest.raises(ValueError, match="atoms .* coincide"):
        atoms_to_graph(atoms, 5.0, ["Si"])
    atoms.positions[7] = np.nan                                # e.g. an MD run that blew up
    with pytest.raises(ValueError, match="atom 7 has a non-finite position"):
        atoms_to_graph(atoms, 5.0, ["Si"])
    assert atoms_to_graph(val_frames[0], 5.0, ["Si"])["edge_index"].shape[0] == 2


def test_shipped_dataset_units(val_frames):
    """The shipped file holds eV and eV/Å: E per atom near the Si PBE/GTH value, forces of liquid-Si size."""
    e = np.array([a.get_potential_energy() / len(a) for a in val_frames])
    assert np.all(np.abs(e + 106.2) < 0.1)
    f_rms = np.sqrt(np.mean(np.concatenate([a.get_forces().ravel() for a in val_frames]) ** 2))
    assert 0.9 < f_rms < 1.5  # Hartree/Bohr -> eV/Å; the Hartree/Å reading would give ~0.63


def test_optional_stress_labels(tmp_path, val_frames):
    """A stress label (calculator Voigt 6, or a 3x3 / 9-vector under another key) is kept as ASE's Voigt
    6-vector; frames without one load as before; malformed ones are named with file, frame and field."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.stress import voigt_6_to_full_3x3_stress

    voigt = np.array([0.01, 0.02, 0.03, -0.004, 0.005, -0.006])   # eV/Å^3
    first, second = val_frames[0].copy(), _labelled_copy(val_frames[1])
    first.calc = SinglePointCalculator(first, energy=val_frames[0].get_potential_energy(),
                                       forces=val_frames[0].get_forces(), stress=voigt)
    write_structures(tmp_path / "s.extxyz", [first, second])
    loaded = load_labelled(tmp_path / "s.extxyz")
    np.testing.assert_allclose(loaded[0].calc.results["stress"], voigt)
    assert "stress" not in loaded[1].calc.results
    other = _labelled_copy(val_frames[0])
    other.info["REF_stress"] = voigt_6_to_full_3x3_stress(voigt)   # a 3x3 under a custom key
    write_structures(tmp_path / "ref.extxyz", [other])
    np.testing.assert_allclose(load_labelled(tmp_path / "ref.extxyz", stress_key="REF_stress")[0].calc.results["stress"], voigt)
    for value, pattern in ((np.ones(4), "stress has 4 components"), (np.array([np.nan] * 6), "non-finite stress")):
        bad = _labelled_copy(val_frames[0])
        bad.info["REF_stress"] = value
        write_structures(tmp_path / "bad.extxyz", [second, bad])
        with pytest.raises(DataError, match=rf"bad\.extxyz, frame 1, field 'REF_stress': {pattern}"):
            load_labelled(tmp_path / "bad.extxyz", stress_key="REF_stress")
    cluster = val_frames[0][:8]
    cluster.pbc, cluster.cell = False, np.zeros((3, 3))
    cluster.calc = SinglePointCalculator(cluster, energy=-800.0, forces=np.zeros((8, 3)))
    cluster.info["REF_stress"] = voigt
    write_structures(tmp_path / "cluster.extxyz", [cluster])
    with pytest.raises(DataError, match="not periodic"):
        load_labelled(tmp_path / "cluster.extxyz", stress_key="REF_stress")
