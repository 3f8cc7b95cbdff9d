"""Training coverage: closest pairs per species pair, stored by training, computed for older runs, watched by MD
and by `data info --model`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from ase.build import bulk
from typer.testing import CliRunner

from hqc_qiskit.calculator import HQCCalculator
from hqc_qiskit.checkpoint import read_checkpoint
from hqc_qiskit.cli import app
from hqc_qiskit.config import load_config
from hqc_qiskit.coverage import REACH, below, closest_pairs, coverage_of, coverage_of_frames, merge, pair_margin
from hqc_qiskit.data.dataset import density_g_cm3, read_structures
from hqc_qiskit.errors import HQCError
from hqc_qiskit.md import MDOptions, run_md
from hqc_qiskit.runlog import read_rows
from hqc_qiskit.train import Trainer, training_structures

from tests.conftest import DATA, ROOT, squashed

QUICK = ROOT / "runs" / "quick"   # committed, trained before coverage was stored


def test_closest_pairs_of_rock_salt_per_species_pair():
    a = 5.6   # Å: Na-Cl at a/2, like ions at a/sqrt(2)
    pairs = closest_pairs(bulk("NaCl", "rocksalt", a=a) * 2)
    assert set(pairs) == {"Cl-Cl", "Cl-Na", "Na-Na"}
    assert pairs["Cl-Na"] == pytest.approx(a / 2)
    assert pairs["Na-Na"] == pytest.approx(a / np.sqrt(2)) and pairs["Cl-Cl"] == pytest.approx(a / np.sqrt(2))
    assert closest_pairs(bulk("NaCl", "rocksalt", a=a), within=2.0) == {}   # nothing within 2 Å


def test_coverage_merges_to_the_closest_pair_and_widest_density():
    dense, loose = bulk("Si", "diamond", a=5.2), bulk("Si", "diamond", a=5.6)
    one, two = coverage_of_frames([loose]), coverage_of_frames([dense, loose])
    assert one["closest_pair_A"]["Si-Si"] == pytest.approx(5.6 * np.sqrt(3) / 4)
    assert two["closest_pair_A"]["Si-Si"] == pytest.approx(5.2 * np.sqrt(3) / 4)
    assert two["density_g_cm3"] == pytest.approx([density_g_cm3(loose), density_g_cm3(dense)])
    assert merge(one, None, coverage_of_frames([dense])) == two
    assert merge(None, None) is None
    # a pair closer than the training's, and one the training never held within REACH, are both outside it
    pairs = {"Si-Si": 2.0, "O-Si": 3.0}
    assert below(pairs, two) == {"Si-Si": (2.0, two["closest_pair_A"]["Si-Si"]), "O-Si": (3.0, REACH)}
    assert pair_margin(pairs, two) == pytest.approx(min(2.0 - 5.2 * np.sqrt(3) / 4, 3.0 - REACH))
    assert pair_margin({"Si-Si": 2.0}, two) == pytest.approx(2.0 - 5.2 * np.sqrt(3) / 4)
    assert below({"Si-Si": 2.4}, two) == {} and pair_margin({"Si-Si": 2.4}, two) > 0


def test_training_stores_coverage_and_a_fine_tune_adds_its_source(tiny_config, tmp_path):
    config = tiny_config(train__max_epochs=1)
    Trainer(config, progress=False).fit()
    expected = coverage_of_frames(training_structures(config))
    assert expected["n_frames"] == 8
    run = config.run_dir()
    for name in ("best_model.pt", "checkpoint.pt"):
        assert read_checkpoint(run / name)["training_coverage"] == expected
    assert json.loads((run / "summary.json").read_text())["training_coverage"] == expected
    assert coverage_of(run) == expected
    tuned = tiny_config(train__max_epochs=1, train__init_from=str(run), output_dir=str(tmp_path / "tuned"),
                        data__train=str(DATA / "si_liquid_3000K.test.extxyz.gz"))
    Trainer(tuned, progress=False).fit()
    assert coverage_of(tuned.run_dir()) == merge(coverage_of_frames(training_structures(tuned)), expected)


def test_coverage_of_an_older_run_is_computed_from_its_training_files(tmp_path):
    assert "training_coverage" not in read_checkpoint(QUICK / "best_model.pt")   # the point of this test
    expected = coverage_of_frames(training_structures(load_config(QUICK / "config.yaml")))
    assert expected["n_frames"] > 100
    assert coverage_of(QUICK) == expected
    assert coverage_of(QUICK / "best_model.pt") == expected
    shutil.copy(QUICK / "best_model.pt", tmp_path / "alone.pt")   # no config beside it: unknown, not an error
    assert coverage_of(tmp_path / "alone.pt") is None
    with pytest.raises(HQCError, match="no such run directory"):
        coverage_of(tmp_path / "missing")


@pytest.fixture(scope="module")
def start():
    return read_structures(DATA / "si_liquid_3000K.test.extxyz.gz")[0]


def test_md_logs_the_closest_pair_and_counts_rows_below_the_training_data(start, tmp_path):
    calc = HQCCalculator(QUICK, dtype="float64")
    opt = dict(steps=20, log_every=5, traj_every=5, checkpoint_every=10)
    d0 = min(closest_pairs(start).values())
    tight = {"closest_pair_A": {"Si-Si": d0 + 0.5}, "density_g_cm3": None, "n_frames": 1}   # every row below
    summary = run_md(start, calc, MDOptions(**opt), tmp_path / "tight", coverage=tight)
    rows = read_rows(tmp_path / "tight" / "md_log.csv")
    frames = read_structures(tmp_path / "tight" / "md_traj.extxyz")
    np.testing.assert_allclose([r["min_pair_A"] for r in rows], [min(closest_pairs(f).values()) for f in frames], atol=1e-8)
    np.testing.assert_allclose([r["pair_margin_A"] for r in rows], [r["min_pair_A"] - d0 - 0.5 for r in rows], atol=1e-8)
    assert summary["rows_below_training"] == summary["rows"] == 5 and summary["first_step_below_training"] == 0
    k = int(np.argmin([r["min_pair_A"] for r in rows]))
    assert summary["min_pair_A"] == pytest.approx(rows[k]["min_pair_A"]) and summary["min_pair_step"] == rows[k]["step"]
    loose = {**tight, "closest_pair_A": {"Si-Si": 1.0}}
    summary = run_md(start, calc, MDOptions(**opt), tmp_path / "loose", coverage=loose)
    assert summary["rows_below_training"] == 0 and summary["first_step_below_training"] is None
    # no coverage: the closest pair is logged, nothing is counted
    summary = run_md(start, calc, MDOptions(**opt), tmp_path / "none")
    assert "min_pair_A" in summary and "rows_below_training" not in summary
    assert "pair_margin_A" not in read_rows(tmp_path / "none" / "md_log.csv")[0]


def test_md_resumes_a_log_written_before_the_pair_columns(start, tmp_path):
    calc = HQCCalculator(QUICK, dtype="float64")
    opt = dict(steps=20, log_every=5, traj_every=5, checkpoint_every=10)
    run_md(start, calc, MDOptions(**{**opt, "steps": 10}), tmp_path)
    log = tmp_path / "md_log.csv"   # as an older version wrote it: without min_pair_A
    lines = [line.split(",") for line in log.read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if name != "min_pair_A"]
    log.write_text("\n".join(",".join(line[i] for i in keep) for line in lines) + "\n")
    coverage = {"closest_pair_A": {"Si-Si": 1.0}, "density_g_cm3": None, "n_frames": 1}
    summary = run_md(start, calc, MDOptions(**opt), tmp_path, resume=True, coverage=coverage)
    assert summary["steps"] == 20 and "min_pair_A" not in summary
    assert "min_pair_A" not in read_rows(log)[-1]


def test_md_min_distance_stop_uses_the_logged_closest_pair(start, tmp_path):
    calc = HQCCalculator(QUICK, dtype="float64")   # liquid Si: first neighbours near 2.4 Å, so a 3 Å limit stops it
    summary = run_md(start, calc, MDOptions(steps=10, log_every=5, min_distance=3.0), tmp_path)
    last = read_rows(tmp_path / "md_log.csv")[-1]
    assert not summary["stable"] and summary["steps"] == 5 == last["step"]
    assert summary["unstable_reason"] == f"two atoms {last['min_pair_A']:.2f} Å apart (< 3.0 Å)"


def test_data_info_counts_frames_outside_the_models_training_data(tmp_path):
    close = bulk("Si", "diamond", a=4.0) * 2   # closest pair 1.73 Å, density 2.9 g/cm³: outside the quick model's
    fine = read_structures(DATA / "si_liquid_3000K.test.extxyz.gz")[0]
    path = tmp_path / "two.extxyz"
    import ase.io

    ase.io.write(path, [fine, close])
    result = CliRunner().invoke(app, ["data", "info", str(path), "--unlabelled", "--model", str(QUICK)])
    assert result.exit_code == 0, result.output
    text = squashed(result.output)
    floor = coverage_of(QUICK)["closest_pair_A"]["Si-Si"]
    assert 4.0 * np.sqrt(3) / 4 < floor < min(closest_pairs(fine).values())   # the point of the two frames
    assert f"closestSi-Si{floor:.3f}Å" in text
    # Rich wraps long cells across table lines, so check the cell's pieces one by one
    row = text[text.index("frameswithacloserpair"):text.index("framesoutsideitsdensities")].replace("│", "")
    for piece in ("1of2", "(closest:frame1", f"Si-Si{4.0 * np.sqrt(3) / 4:.3f}Å", f"<{floor:.3f})"):
        assert piece in row, (piece, row)
    assert "framesoutsideitsdensities│1of2" in text
    result = CliRunner().invoke(app, ["data", "info", str(path), "--unlabelled", "--model", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "nosuchrundirectory" in squashed(result.output)


def test_mc_summary_counts_saved_samples_closer_than_the_training_data(start, tmp_path):
    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.mc_driver import MCOptions, run_mc

    model = load_model(QUICK).double()
    opt = MCOptions(steps=10, sample_every=5, checkpoint_every=5, delta=0.05)
    d0 = min(closest_pairs(start).values())
    tight = {"closest_pair_A": {"Si-Si": d0 + 0.5}, "density_g_cm3": [3.0, 3.5], "n_frames": 1}
    summary = run_mc(model, start, None, opt, tmp_path / "tight", coverage=tight)
    out = summary["samples_outside_training"]
    samples = read_structures(tmp_path / "tight" / "mc_traj.extxyz")
    assert out["frames"] == len(samples) == 3 and out["frames_below_training"] == 3   # steps 0, 5, 10
    assert out["frames_outside_densities"] == out["periodic_frames"] == 3   # liquid Si at 2.33 g/cm³
    k = int(np.argmin([min(closest_pairs(s).values()) for s in samples]))
    assert out["closest_below"]["frame"] == k and out["closest_below"]["training_A"] == d0 + 0.5
    assert out["closest_below"]["distance_A"] == pytest.approx(min(closest_pairs(samples[k]).values()))
    loose = {"closest_pair_A": {"Si-Si": 1.0}, "density_g_cm3": [2.0, 2.5], "n_frames": 1}
    out = run_mc(model, start, None, opt, tmp_path / "loose", coverage=loose)["samples_outside_training"]
    assert out["frames_below_training"] == 0 and out["closest_below"] is None and out["frames_outside_densities"] == 0
    assert "samples_outside_training" not in run_mc(model, start, None, opt, tmp_path / "none")


def test_pull_pair_moves_only_the_closest_pair_and_drops_labels(tmp_path):
    """data pull-pair: each chosen frame's closest pair at each distance, centre of the pair and every other atom
    unmoved, no label left; bad distances, frames and a pull into a third atom are one-line errors."""
    from hqc_qiskit.data.dataset import closest_pair, load_structures

    source = DATA / "si_liquid_3000K.test.extxyz.gz"
    frames = read_structures(source)
    out = tmp_path / "pulled.extxyz"
    result = CliRunner().invoke(app, ["data", "pull-pair", str(source), "--frames", "0,1", "--distances", "1.5,1.7",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    copies = load_structures(out)
    assert [(a.info["source_frame"], a.info["distance_A"]) for a in copies] == [(0, 1.5), (0, 1.7), (1, 1.5), (1, 1.7)]
    for atoms in copies:
        base = frames[atoms.info["source_frame"]]
        i, j, d0 = closest_pair(base, 4.0)
        assert list(atoms.info["pair_atoms"]) == [i, j] and atoms.info["unmoved_distance_A"] == pytest.approx(d0)
        assert closest_pair(atoms, 4.0) == (i, j, pytest.approx(atoms.info["distance_A"]))
        others = np.setdiff1d(np.arange(len(base)), [i, j])
        np.testing.assert_array_equal(atoms.positions[others], base.positions[others])
        # the pair's midpoint (minimum image) is kept
        bond_before, bond_after = base.get_distance(i, j, mic=True, vector=True), atoms.get_distance(i, j, mic=True, vector=True)
        np.testing.assert_allclose(atoms.positions[i] + bond_after / 2, base.positions[i] + bond_before / 2, atol=1e-9)
        assert atoms.calc is None and "energy" not in atoms.info
    # liquid Si has neighbours near 2.4 Å: a pair moved apart to 3 Å is no longer the closest pair
    for args, message in ((["--distances", "0.2"], "--distances"), (["--distances", "1.5", "--frames", "99"], "outofrange"),
                          (["--distances", "abc"], "--distances"), (["--distances", "3.0", "--frames", "0"], "bringsanotherpairto")):
        result = CliRunner().invoke(app, ["data", "pull-pair", str(source), *args, "--out", str(tmp_path / "x.extxyz")])
        assert result.exit_code != 0 and message in squashed(result.output) and "Traceback" not in result.output, result.output
    assert not (tmp_path / "x.extxyz").exists()
