"""hqc-qiskit predict: the model's energies and forces written beside a file's own data."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from typer.testing import CliRunner

from hqc_qiskit.calculator import HQCCalculator
from hqc_qiskit.cli import app
from hqc_qiskit.data.dataset import read_structures, write_structures
from hqc_qiskit.errors import DataError, HQCError
from hqc_qiskit.predict import predict_file
from tests.conftest import DATA, squashed
from tests.test_simulation import QUICK

TEST_FILE = DATA / "si_liquid_3000K.test.extxyz.gz"
runner = CliRunner()


@pytest.fixture()
def four_frames(tmp_path):
    """Four labelled test frames of the shipped data, with an extra per-frame info field."""
    frames = read_structures(DATA / "si_liquid_3000K.test.extxyz.gz", index=":4")
    for k, atoms in enumerate(frames):
        atoms.info["source_frame"] = k
    path = tmp_path / "four.extxyz"
    write_structures(path, frames)
    return path


def test_predictions_equal_the_calculator_and_keep_the_labels(tmp_path, four_frames):
    out = tmp_path / "pred.extxyz.gz"
    summary = predict_file(QUICK, four_frames, out, batch_size=3)   # batches of 3 and 1
    assert (summary["frames"], summary["atoms"]) == (4, 256)
    written, given = ase.io.read(out, ":"), ase.io.read(four_frames, ":")
    calc = HQCCalculator(QUICK)   # one structure at a time, the model's own float32
    for w, g in zip(written, given):
        np.testing.assert_array_equal(w.positions, g.positions)
        assert w.get_potential_energy() == g.get_potential_energy()          # the reference labels are kept
        np.testing.assert_array_equal(w.get_forces(), g.get_forces())
        assert w.info["source_frame"] == g.info["source_frame"]
        g.calc = calc
        assert w.info["hqc_energy"] == pytest.approx(g.get_potential_energy(), abs=2e-3)   # eV, float32 batching
        np.testing.assert_allclose(w.arrays["hqc_forces"], g.get_forces(), atol=1e-4)
        np.testing.assert_allclose(w.info["hqc_stress"], g.get_stress(), atol=1e-6)   # eV/Å^3, Voigt
        assert abs(w.info["hqc_energy"] - w.get_potential_energy()) / len(w) < 0.1   # a trained model, not noise


def test_unlabelled_input_and_another_prefix(tmp_path, four_frames):
    bare = [ase.Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True) for a in ase.io.read(four_frames, ":")]
    bare[1] = ase.Atoms(bare[1].numbers[:8], positions=bare[1].positions[:8])   # a cluster: no cell, no stress
    path = tmp_path / "bare.xyz"
    ase.io.write(path, bare, format="extxyz")
    predict_file(QUICK, path, tmp_path / "a.extxyz", prefix="model_a_")
    predict_file(QUICK, tmp_path / "a.extxyz", tmp_path / "ab.extxyz", prefix="model_b_", which="last")
    both = ase.io.read(tmp_path / "ab.extxyz", ":")
    assert all(a.calc is None for a in both)   # no reference labels were made up
    assert all(set(a.info) >= {"model_a_energy", "model_b_energy"} for a in both)
    assert [a.arrays["model_b_forces"].shape for a in both] == [(64, 3), (8, 3), (64, 3), (64, 3)]
    assert ["model_a_stress" in a.info for a in both] == [True, False, True, True]


def test_refusals_name_what_is_wrong(tmp_path, four_frames):
    out = tmp_path / "p.extxyz"
    predict_file(QUICK, four_frames, out)
    before = out.read_bytes()
    with pytest.raises(HQCError, match="exists: pass --overwrite"):
        predict_file(QUICK, four_frames, out)
    with pytest.raises(HQCError, match="is the input file"):
        predict_file(QUICK, four_frames, four_frames, overwrite=True)
    with pytest.raises(DataError, match=r"p\.extxyz, frame 0, field 'hqc_energy': already has 'hqc_energy'"):
        predict_file(QUICK, out, tmp_path / "q.extxyz")
    for prefix in ("", "a b", "1x_", "x="):
        with pytest.raises(HQCError, match="--prefix"):
            predict_file(QUICK, four_frames, tmp_path / "r.extxyz", prefix=prefix)
    carbon = ase.io.read(four_frames, ":")
    carbon[2].symbols[5] = "C"
    ase.io.write(tmp_path / "c.extxyz", carbon)
    with pytest.raises(DataError, match=r"c\.extxyz, frame 2, field 'symbols'.*not in the model's species"):
        predict_file(QUICK, tmp_path / "c.extxyz", tmp_path / "s.extxyz")
    assert out.read_bytes() == before and not (tmp_path / "r.extxyz").exists() and not (tmp_path / "s.extxyz").exists()
    predict_file(QUICK, four_frames, out, prefix="other_", overwrite=True)
    assert "other_energy" in ase.io.read(out).info


def test_cli(tmp_path, four_frames):
    out = tmp_path / "p.extxyz"
    args = ["predict", str(QUICK), "--data", str(four_frames), "--out", str(out), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote4frames(256atoms)" in squashed(result.output)
    assert len(ase.io.read(out, ":")) == 4
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--overwrite" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, [*args, "--overwrite", "--batch-size", "0"])
    assert result.exit_code == 2


def test_chunks_and_progress_cover_every_frame_once(tmp_path):
    """A file is labelled a chunk of 20 x batch_size frames at a time: two chunks give what one batch gives."""
    seen = []
    small = predict_file(QUICK, TEST_FILE, tmp_path / "a.extxyz", batch_size=2, progress=lambda d, t: seen.append((d, t)))
    predict_file(QUICK, TEST_FILE, tmp_path / "b.extxyz", batch_size=50)
    assert small["frames"] == 50 and small["atoms"] == 3200
    assert seen == [(d, 50) for d in range(2, 51, 2)]
    a, b = ase.io.read(tmp_path / "a.extxyz", ":"), ase.io.read(tmp_path / "b.extxyz", ":")
    np.testing.assert_allclose([x.info["hqc_energy"] for x in a], [x.info["hqc_energy"] for x in b], rtol=0, atol=2e-3)
    np.testing.assert_allclose(np.concatenate([x.arrays["hqc_forces"] for x in a]),
                               np.concatenate([x.arrays["hqc_forces"] for x in b]), atol=1e-4)
    assert np.ptp([x.info["hqc_energy"] for x in a]) > 0.1   # 50 different structures, not one repeated


def test_committee_means_and_spread(tmp_path, four_frames):
    """Two members (the best and the last checkpoint of the shipped run): the committee's values are the
    members' means; with two members the spread is half the difference, per frame and per atom."""
    best, last = QUICK / "best_model.pt", QUICK / "checkpoint.pt"
    single = {}
    for name, run in (("best", best), ("last", last)):
        predict_file(run, four_frames, tmp_path / f"{name}.extxyz")
        single[name] = ase.io.read(tmp_path / f"{name}.extxyz", ":")
    summary = predict_file([best, last], four_frames, tmp_path / "committee.extxyz", batch_size=3)
    assert summary["committee"] == 2 and len(summary["max_forces_dev"]) == 4
    for c, b, l in zip(ase.io.read(tmp_path / "committee.extxyz", ":"), single["best"], single["last"]):
        assert c.info["hqc_energy"] == pytest.approx((b.info["hqc_energy"] + l.info["hqc_energy"]) / 2, abs=1e-6)
        assert c.info["hqc_energy_std"] == pytest.approx(abs(b.info["hqc_energy"] - l.info["hqc_energy"]) / 2, abs=1e-6)
        np.testing.assert_allclose(c.arrays["hqc_forces"], (b.arrays["hqc_forces"] + l.arrays["hqc_forces"]) / 2, atol=1e-6)
        half = np.linalg.norm(b.arrays["hqc_forces"] - l.arrays["hqc_forces"], axis=1) / 2
        np.testing.assert_allclose(c.arrays["hqc_forces_dev"], half, atol=1e-6)
        assert c.info["hqc_max_forces_dev"] == pytest.approx(half.max(), abs=1e-6) and half.max() > 1e-3
        np.testing.assert_allclose(c.info["hqc_stress"], (b.info["hqc_stress"] + l.info["hqc_stress"]) / 2, atol=1e-8)
    same = predict_file([best, best, best], four_frames, tmp_path / "same.extxyz")
    assert max(same["max_forces_dev"]) == 0   # identical members agree exactly
    result = runner.invoke(app, ["predict", str(best), str(last), "--data", str(four_frames), "--out",
                                 str(tmp_path / "cli.extxyz"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "committee of 2" in result.output and "largest force deviation per frame" in result.output


def test_committee_members_must_know_the_same_elements(tmp_path, four_frames):
    import torch

    from hqc_qiskit.checkpoint import atomic_save, model_payload
    from hqc_qiskit.model.potential import build_model
    from tests.conftest import TINY_MODEL

    torch.manual_seed(0)
    other = tmp_path / "si_o.pt"
    atomic_save(model_payload(build_model(dict(TINY_MODEL, species=["Si", "O"]))), other)
    with pytest.raises(HQCError, match="must know the same elements"):
        predict_file([QUICK, other], four_frames, tmp_path / "x.extxyz")
    assert not (tmp_path / "x.extxyz").exists()
