"""The console script: help texts, data import/split/info, train + evaluate --json, clear errors."""

from __future__ import annotations

import inspect
import json

import ase
import ase.io
import numpy as np
import pytest
import torch
from typer.main import get_command as typer_main
from typer.testing import CliRunner

from hqc_qiskit.cli import app
from tests.conftest import squashed
from tests.test_data_import import _pair

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["data"], ["data", "import-cp2k"], ["data", "split"], ["data", "info"], ["data", "merge"], ["train"], ["evaluate"], ["predict"], ["transpile"], ["backends"], ["energy"], ["noise-study"], ["shots-study"], ["md"], ["mc"], ["rdf"], ["mc-study"]])
def test_help_is_complete(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if args and args[-1] == "import-cp2k":
        assert "--cp2k-input" in result.output and "--force-unit" in result.output


def test_command_lists_show_each_summary_unbroken():
    """In ``--help``'s command list each command's summary is one paragraph, wrapped by the terminal and not at its
    docstring's source lines (md, noise-snapshot, energy and data merge/scale/pull-pair have multi-line ones)."""
    wide = CliRunner(env={"COLUMNS": "400"})   # no wrapping by the terminal: a line break left is the docstring's
    root = typer_main(app)
    for args, group in (([], root), (["data"], root.commands["data"])):
        output = wide.invoke(app, [*args, "--help"]).output
        for name, command in group.commands.items():
            summary = " ".join(inspect.cleandoc(command.help or "").split("\n\n")[0].split())
            rows = [line for line in output.splitlines() if f" {name} " in line]
            assert any(squashed(summary) in squashed(row) for row in rows), (name, summary, rows)


def test_the_console_script_starts_without_the_heavy_libraries():
    """Importing the CLI (what every command, --help included, pays first) loads none of torch, e3nn, qiskit, scipy.stats
    or emcee; each command imports what it uses. emcee at import (through scipy.stats) was 0.55 s of a 1.0 s start."""
    import subprocess
    import sys

    heavy = ["torch", "e3nn", "qiskit", "qiskit_aer", "mitiq", "scipy.stats", "emcee", "ase"]
    code = f"import sys, hqc_qiskit.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_import_split_info(tmp_path):
    p, f, _, _ = _pair(tmp_path, n_frames=10)
    out = tmp_path / "all.extxyz.gz"
    result = runner.invoke(app, ["data", "import-cp2k", str(p), str(f), "--cell", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 10 frames" in result.output
    result = runner.invoke(app, ["data", "split", str(out), "--sizes", "6,2,2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "all.train.extxyz.gz").exists() and (tmp_path / "all.test.extxyz.gz").exists()
    result = runner.invoke(app, ["data", "info", str(tmp_path / "all.train.extxyz.gz")])
    assert result.exit_code == 0 and "6" in result.output
    bare = tmp_path / "bare.extxyz"   # structures without labels (an MD trajectory, say)
    ase.io.write(bare, [ase.Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True)
                        for a in ase.io.read(tmp_path / "all.train.extxyz.gz", ":")])
    result = runner.invoke(app, ["data", "info", str(bare)])
    assert result.exit_code == 2 and "no energy label" in result.output and "--unlabelled" in result.output
    result = runner.invoke(app, ["data", "info", str(bare), "--unlabelled"])
    assert result.exit_code == 0 and "frames" in result.output and "E per atom" not in result.output
    for again in (["data", "import-cp2k", str(p), str(f), "--cell", "5", "--out", str(out)],
                  ["data", "split", str(out), "--sizes", "5,3,2"]):   # would change what runs were trained on
        result = runner.invoke(app, again)
        assert result.exit_code == 2 and "--overwrite" in result.output, result.output
        result = runner.invoke(app, again + ["--overwrite"])
        assert result.exit_code == 0, result.output


def test_merge_oversamples_and_keeps_stress(tmp_path):
    """data merge: frames of several files in order, each file repeated --repeat times, stress labels kept (training
    reads them back); bad repeat counts and an unlabelled file are one-line errors; the output is not overwritten
    without --overwrite."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from hqc_qiskit.data.dataset import load_labelled

    p, f, _, _ = _pair(tmp_path, n_frames=4)
    plain = tmp_path / "plain.extxyz"
    assert runner.invoke(app, ["data", "import-cp2k", str(p), str(f), "--cell", "5", "--out", str(plain)]).exit_code == 0
    stressed = tmp_path / "stressed.extxyz"
    frames = load_labelled(plain)[:2]
    for k, atoms in enumerate(frames):
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                                           stress=[0.01 * (k + 1), 0.02, 0.03, 0.0, 0.0, 0.001])
    ase.io.write(stressed, frames)
    out = tmp_path / "merged.extxyz.gz"
    result = runner.invoke(app, ["data", "merge", str(plain), str(stressed), "--repeat", "1,3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 10 frames (6 with a stress label)" in " ".join(result.output.split())
    merged = load_labelled(out)
    assert [("stress" in a.calc.results) for a in merged] == [False] * 4 + [True] * 6
    np.testing.assert_allclose(merged[5].get_stress(), frames[1].get_stress())   # the file repeated as a whole
    np.testing.assert_allclose(merged[4].positions, frames[0].positions)
    assert merged[5].info["source"] == str(stressed)
    for bad, message in ((["--repeat", "1"], "1 count(s) for 2 files: give one count per file"), (["--repeat", "1,0"], "--repeat"),
                         (["--out", str(out)], "--overwrite")):
        result = runner.invoke(app, ["data", "merge", str(plain), str(stressed), "--out", str(tmp_path / "new.extxyz"), *bad])
        assert result.exit_code == 2 and message in " ".join(result.output.split()) and "Traceback" not in result.output, result.output
    bare = tmp_path / "bare.extxyz"
    ase.io.write(bare, [ase.Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True) for a in frames])
    result = runner.invoke(app, ["data", "merge", str(plain), str(bare), "--out", str(tmp_path / "x.extxyz")])
    assert result.exit_code == 2 and "bare.extxyz" in " ".join(result.output.split()) and "no energy label" in result.output


def test_scale_writes_unlabelled_copies_at_other_densities(tmp_path):
    """data scale: each chosen frame at each linear factor (or target density), volume x factor^3, fractional
    coordinates unchanged, no label left anywhere (the calculator's, info's or per-atom arrays'), the source noted;
    bad input is a one-line error naming the option or the file."""
    from hqc_qiskit.data.dataset import density_g_cm3, load_structures

    p, f, _, _ = _pair(tmp_path, n_frames=3)
    plain = tmp_path / "plain.extxyz"
    assert runner.invoke(app, ["data", "import-cp2k", str(p), str(f), "--cell", "5", "--out", str(plain)]).exit_code == 0
    source = ase.io.read(plain, ":")
    labelled = tmp_path / "labelled.extxyz"   # labels under other keys too, which a plain copy would carry along
    for atoms in source:
        atoms.info["REF_energy"] = 1.0
        atoms.arrays["REF_forces"] = np.ones((len(atoms), 3))
    ase.io.write(labelled, source)
    out = tmp_path / "scaled.extxyz"
    result = runner.invoke(app, ["data", "scale", str(labelled), "--frames", "0,2", "--scales", "0.9,1.1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    copies = load_structures(out)
    assert [(a.info["source_frame"], a.info["scale"]) for a in copies] == [(0, 0.9), (0, 1.1), (2, 0.9), (2, 1.1)]
    for atoms in copies:
        base = source[atoms.info["source_frame"]]
        assert atoms.get_volume() == pytest.approx(base.get_volume() * atoms.info["scale"] ** 3, rel=1e-9)
        np.testing.assert_allclose(atoms.get_scaled_positions(), base.get_scaled_positions(), atol=1e-9)
        assert atoms.calc is None and "REF_energy" not in atoms.info and "REF_forces" not in atoms.arrays
        assert atoms.info["density_g_cm3"] == pytest.approx(density_g_cm3(atoms), rel=1e-9)
    dense = tmp_path / "dense.extxyz"
    target = 1.2 * density_g_cm3(source[1])
    result = runner.invoke(app, ["data", "scale", str(labelled), "--frames", "1", "--densities", f"{target!r}", "--out", str(dense)])
    assert result.exit_code == 0, result.output
    assert density_g_cm3(load_structures(dense)[0]) == pytest.approx(target, rel=1e-9)
    for bad, message in ((["--scales", "1", "--densities", "2"], "exactly one of --scales and --densities"), ([], "exactly one"),
                         (["--scales", "0"], "must be positive"), (["--scales", "1", "--frames", "3"], "frame(s) [3] out of range"),
                         (["--scales", "x"], "'x' is not a number"), (["--scales", "1", "--out", str(out)], "--overwrite")):
        args = ["data", "scale", str(labelled), "--out", str(tmp_path / "new.extxyz"), *bad]
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and message in text and "Traceback" not in result.output, (bad, result.output)


def test_import_errors_are_one_line(tmp_path):
    p, f, _, _ = _pair(tmp_path, frc=lambda fr: fr[:1])
    result = runner.invoke(app, ["data", "import-cp2k", str(p), str(f), "--cell", "5", "--out", str(tmp_path / "x.extxyz")])
    assert result.exit_code == 2
    assert "error:" in result.output and "n_frames" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["data", "import-cp2k", str(p), str(f), "--out", str(tmp_path / "x.extxyz")])
    assert result.exit_code == 2 and "--cell or --cp2k-input" in result.output


def _tiny_cli_config(tmp_path):
    """A one-epoch, four-structure training config file (seconds on a CPU)."""
    from tests.conftest import DATA

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "name: cli\nseed: 0\n"
        f"data: {{train: {DATA / 'si_liquid_3000K.val.extxyz.gz'}, val: {DATA / 'si_liquid_3000K.test.extxyz.gz'}, max_train: 4, max_val: 2}}\n"
        "model: {lmax: 1, embedding_dim: 4, hidden_irreps: 4x0e + 2x1o, n_layers: 1, radial_mlp: [8], readout: {kind: classical, hidden: 4}}\n"
        "train: {batch_size: 2, max_epochs: 1}\n"
    )
    return cfg


def test_train_then_evaluate_json(tmp_path):
    from tests.conftest import DATA

    cfg = _tiny_cli_config(tmp_path)
    result = runner.invoke(app, ["train", str(cfg), "-o", f"output_dir={tmp_path / 'run'}", "-o", "train.micro_batch_size=1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "structures;batch2inpassesof1;device" in squashed(result.output)   # the start line says how it trains
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())   # where and with what it trained
    assert summary["hardware"]["cpu_count"] >= 1 and summary["versions"]["torch"] == torch.__version__
    out = tmp_path / "m.json"
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--data", str(DATA / "si_liquid_3000K.test.extxyz.gz"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["rmse_e_mev_atom"] > 0 and metrics["rmse_f_ev_a"] > 0
    result = runner.invoke(app, ["train", str(cfg), "-o", "model.hidden_irreps=4x1o"])
    assert result.exit_code == 2 and "hidden_irreps" in result.output


@pytest.mark.parametrize("command", [["evaluate", "--data", "x.extxyz"], ["mc", "--steps", "1"], ["md", "--steps", "1"],
                                     ["energy", "--structure", "x.extxyz"]])
def test_a_missing_run_directory_is_a_one_line_error(tmp_path, command):
    missing = tmp_path / "no_such_run"
    result = runner.invoke(app, [command[0], str(missing), *command[1:]])
    assert result.exit_code == 2, result.output
    text = squashed(result.output)
    assert squashed(f"{missing}: no such run directory or checkpoint file") in text and "Traceback" not in text


def test_errors_are_one_unwrapped_line_with_brackets_kept(tmp_path):
    """A long path is not broken by Rich's wrapping and '[bold]' in it is not read as markup."""
    missing = tmp_path / ("[bold]" + "x" * 150)
    result = runner.invoke(app, ["evaluate", str(missing), "--data", "y.extxyz"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and f"error: {missing}: no such run directory" in result.output


@pytest.mark.parametrize("args, said", [
    (["data", "split", "x.extxyz", "--sizes", "6,two"], "--sizes '6,two': 'two' is not a number"),
    (["data", "split", "x.extxyz", "--sizes", "6,2.5"], "--sizes '6,2.5': '2.5' is not allowed (expected whole numbers >= 0)"),
    (["shots-study", "r", "--shots", "1000,inf"], "--shots '1000,inf': 'inf' is not allowed (expected whole numbers >= 2)"),
    (["mc-study", "r", "--shots", "0"], "--shots '0': '0' is not allowed"),
    (["noise-study", "r", "--scales", "1,nan"], "--scales '1,nan': 'nan' is not allowed (expected finite numbers >= 0)")])
def test_number_lists_name_the_option(tmp_path, args, said):
    """Comma-separated numbers are checked before any work (int('inf') was a traceback, 'nan' a NaN scale)."""
    from hqc_qiskit.cli_common import number_list
    from tests.conftest import tiny_hqc_checkpoint

    assert number_list("1e3, 3000", "--shots", integer=True, minimum=1) == [1000, 3000]
    _, run = tiny_hqc_checkpoint(tmp_path)
    args = [str(run) if a == "r" else a for a in args]
    result = runner.invoke(app, args + (["--out", str(tmp_path / "out")] if args[0] != "data" else []))
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args, said", [
    (["noise-study", "r", "--n-structures", "0"], "Invalid value for '--n-structures'"),
    (["shots-study", "r", "--repeats", "0"], "Invalid value for '--repeats'"),
    (["shots-study", "r", "--target", "-1"], "target standard error must be a positive number"),
    (["shots-study", "r", "--n-structures", "51"], "--n-structures 51:"),
    (["rdf", "r", "--blocks", "0"], "Invalid value for '--blocks'"),
    (["mc", "r", "--adapt-steps", "-3"], "Invalid value for '--adapt-steps'")])
def test_counts_and_targets_are_checked_before_any_work(tmp_path, args, said):
    """Each of these ran silently (0 repeats, -1 structures meaning all but the last) or died in a traceback."""
    from tests.conftest import tiny_hqc_checkpoint

    _, run = tiny_hqc_checkpoint(tmp_path)
    args = [str(run) if a == "r" else a for a in args]
    out = ["--out", str(tmp_path / "out")] if args[0] in ("noise-study", "shots-study", "mc") else []
    result = runner.invoke(app, args + out)
    assert result.exit_code == 2, result.output
    assert squashed(said) in squashed(result.output), result.output   # Rich's error box wraps
    assert not (tmp_path / "out").exists()


def test_version_lists_the_packages_that_decide_results():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert f"hqc-qiskit {version('hqc-qiskit')}" in lines and f"qiskit {version('qiskit')}" in lines
    assert f"e3nn {version('e3nn')}" in lines and len(lines) == 10


def test_ctrl_c_says_how_to_continue(tmp_path, monkeypatch):
    """Ctrl-C during training exits 130 with the checkpoint to resume from, not a traceback."""
    from hqc_qiskit.train import Trainer

    cfg = _tiny_cli_config(tmp_path)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(cfg), "-o", f"output_dir={run}", "--no-progress"])
    assert result.exit_code == 0, result.output

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupt)
    result = runner.invoke(app, ["train", str(cfg), "-o", f"output_dir={run}", "-o", "train.max_epochs=2", "--resume"])
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert squashed(f"{run / 'checkpoint.pt'} keeps what was finished") in squashed(result.output)
    result = runner.invoke(app, ["train", str(cfg), "-o", f"output_dir={tmp_path / 'fresh'}"])
    assert result.exit_code == 130 and "nothing to resume" in result.output


def test_ctrl_c_during_a_journaled_energy_points_at_the_journal(tmp_path, monkeypatch):
    import hqc_qiskit.quantum.estimate as estimate
    from tests.conftest import DATA, tiny_hqc_checkpoint

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    _, path = tiny_hqc_checkpoint(tmp_path)
    journal = tmp_path / "jobs"
    journal.mkdir()
    monkeypatch.setattr(estimate, "estimate_energy", interrupt)
    result = runner.invoke(app, ["energy", str(path), "--structure", str(DATA / "si_liquid_3000K.test.extxyz.gz"),
                                 "--backend", "aer", "--journal", str(journal)])
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert squashed(f"{journal} keeps what was finished; run the same command") in squashed(result.output)


def test_data_info_reports_closest_atoms_and_density(val_frames):
    """Checked against ASE's minimum-image distances and the textbook density of silicon (2.329 g/cm³)."""
    from tests.conftest import DATA

    result = runner.invoke(app, ["data", "info", str(DATA / "si_liquid_3000K.val.extxyz.gz")])
    assert result.exit_code == 0, result.output
    closest = min((a.get_all_distances(mic=True) + 99 * np.eye(len(a))).min() for a in val_frames)
    table = squashed(result.output)   # cell padding depends on the widest row
    assert squashed(f"closest atoms (Å) │ {closest:.3f} (frame") in table and squashed("density (g/cm³) │ 2.3290") in table


def test_evaluate_reports_stress_where_frames_have_it(tmp_path):
    from tests.conftest import ROOT

    frames = ROOT / "docs" / "evidence" / "cp2k_stress_frames.extxyz"   # 8 test frames with CP2K's stress
    result = runner.invoke(app, ["evaluate", str(ROOT / "runs" / "quick"), "--data", str(frames),
                                 "--plot", str(tmp_path / "p.png"), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n_stress_structures"] == 8 and metrics["rmse_stress_gpa"] > 1.0   # the quick model: about 3 GPa
    assert "stress" in result.output and "GPa" in result.output
    info = runner.invoke(app, ["data", "info", str(frames)])
    dft = json.loads((ROOT / "docs" / "evidence" / "cp2k_stress.json").read_text())["dft"]["pressure_gpa"]
    assert info.exit_code == 0 and f"8 frames, pressure {min(dft):.2f} to {max(dft):.2f} GPa" in info.output   # CP2K's


@pytest.mark.parametrize("args,choices", [
    (["train", "runs/quick.yaml"], "continue the run, or start it over"),
    (["noise-study", "runs/quick"], "keep the points, or replace them"),
    (["noise-aware", "runs/l2_hqc_cz_long", "--backend", "aer-noise:depolarizing", "--out", "unused"],
     "continue the run, or start it over"),
])
def test_resume_and_overwrite_together_are_refused_before_any_work(args, choices, monkeypatch):
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, [*args, "--resume", "--overwrite"])
    assert result.exit_code == 2
    assert squashed(f"--resume and --overwrite exclude each other: {choices}") in squashed(result.output)
    assert not (ROOT / "unused").exists()
