"""The committed runs reproduce their reported test metrics: re-evaluating runs/<run>/best_model.pt on the run's
test file gives the RMSEs in its test_metrics.json (hqc-qiskit evaluate) or summary.json (trainer), the numbers
docs/results.md quotes. Default: the runs behind the headline numbers; -m slow: every committed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hqc_qiskit.config import load_config
from hqc_qiskit.evaluate import evaluate
from hqc_qiskit.studies import _test_metrics
from tests.conftest import ROOT

# the runs quoted in docs/results.md "At a glance" (best accuracy; HQC against CMLP)
HEADLINE = ["small_l2_cmlp_long", "l2_hqc_cz_clip100_long", "l2_cmlp_long"]


def _recorded(run: Path) -> dict | None:
    """Test RMSEs recorded for a run, as `studies sizes` reads them (summary.json's test block, else
    test_metrics.json); None for a run that has neither."""
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    try:
        return _test_metrics(run, summary)
    except SystemExit:
        return None


def _evidence_module(name: str, monkeypatch):
    """docs/evidence/<name>.py imported as a module (its sibling modules, e.g. cp2k_stress, importable)."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "docs" / "evidence"))
    spec = importlib.util.spec_from_file_location(f"{name}_evidence", ROOT / "docs" / "evidence" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed_runs() -> list[Path]:
    runs = sorted({p.parent for p in ROOT.glob("runs/**/best_model.pt")})
    return [r for r in runs if _recorded(r) and (r / "config.yaml").exists()]


def _check(run: Path) -> None:
    recorded = _recorded(run)
    # test_metrics.json names its data (relative to the repository root); the trainer's test set is the config's
    test_file = ROOT / recorded["data"] if "data" in recorded else load_config(run / "config.yaml").data.test
    assert test_file, f"{run}: no test file in its config"
    again = evaluate(run, test_file, device="cpu")
    for key in ("rmse_e_mev_atom", "rmse_f_ev_a"):
        assert again[key] == pytest.approx(recorded[key], rel=1e-4), (run.name, key)


def test_the_headline_runs_are_committed_with_metrics():
    runs = _committed_runs()
    assert set(HEADLINE) <= {r.name for r in runs} and len(runs) >= 30, [str(r) for r in runs]


@pytest.mark.parametrize("name", HEADLINE)
def test_headline_run_reproduces_its_test_metrics(name):
    _check(ROOT / "runs" / name)


@pytest.mark.slow
@pytest.mark.parametrize("run", _committed_runs(), ids=lambda r: str(r.relative_to(ROOT / "runs")))
def test_committed_run_reproduces_its_test_metrics(run):
    _check(run)


def test_spike_rule_fires_only_at_the_real_divergence():
    """The trainer's SpikeWarning rule replayed on every committed run's metrics.csv (monitored loss: validation,
    else training; one warning per episode) fires once: l2_hqc_cz seed 0 at epoch 56 (docs/training.md)."""
    import math

    from hqc_qiskit.plots import _read_csv
    from hqc_qiskit.train import is_spike

    fired, n_runs = [], 0
    for path in sorted(ROOT.glob("runs/**/metrics.csv")):
        cols = _read_csv(path)
        losses = cols["val_loss"] if "val_loss" in cols and math.isfinite(cols["val_loss"][0]) else cols["train_loss"]
        best, spiking, n_runs = math.inf, False, n_runs + 1
        for epoch, loss in zip(cols["epoch"], losses):
            now = is_spike(loss, best)
            if now and not spiking:
                fired.append((path.parent.relative_to(ROOT / "runs").as_posix(), int(epoch)))
            spiking, best = now, min(best, loss)
    assert n_runs >= 40
    assert fired == [("l2_hqc_cz_long", 56)]


def test_stress_against_dft_is_reproduced():
    """docs/results.md "Stress against DFT": the models' stresses in docs/evidence/cp2k_stress.json are what the
    committed checkpoints give now, and its DFT pressures are those of the committed CP2K results."""
    import numpy as np
    from ase.units import GPa

    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.data.dataset import load_labelled

    evidence = ROOT / "docs" / "evidence"
    report = json.loads((evidence / "cp2k_stress.json").read_text())
    frames = load_labelled(ROOT / report["file"])
    suffix = {"converged": "converged.json", "scratch": "dft.json"}[report["reference"]]
    dft = [json.loads((evidence / "cp2k_stress" / f"frame{k}.{suffix}").read_text()) for k in report["frames"]]
    np.testing.assert_allclose([-np.trace(d["stress_ev_a3"]) / 3 / GPa for d in dft], report["dft"]["pressure_gpa"], rtol=1e-12)
    for run in ("runs/small_l2_cmlp_long", "runs/l2_hqc_cz_long"):
        calc = HQCCalculator(ROOT / run, dtype="float64")
        stresses = []
        for k in report["frames"]:
            atoms = frames[k].copy()
            atoms.calc = calc
            stresses.append(atoms.get_stress(voigt=False))
        np.testing.assert_allclose(stresses, report["models"][run]["stress_ev_a3"], rtol=0, atol=1e-9)
        error = np.array(stresses) - np.array([d["stress_ev_a3"] for d in dft])
        assert np.sqrt(np.mean(error**2)) / GPa == pytest.approx(report["models"][run]["stress_rmse_gpa"], rel=1e-6)
        # hqc-qiskit evaluate on the frames with CP2K's labels reports the same (the model's own float32 here)
        metrics = evaluate(ROOT / run, evidence / "cp2k_stress_frames.extxyz")
        assert metrics["n_stress_structures"] == len(report["frames"])
        assert metrics["rmse_stress_gpa"] == pytest.approx(report["models"][run]["stress_rmse_gpa"], rel=1e-3)
        assert metrics["rmse_pressure_gpa"] == pytest.approx(report["models"][run]["pressure_rmse_gpa"], rel=1e-3)


def test_density_report_is_reproduced(monkeypatch, tmp_path):
    """docs/results.md "Away from the training density": docs/evidence/cp2k_density.json is what its script
    computes now from the committed CP2K results and checkpoints (its compare run again, written elsewhere)."""
    module = _evidence_module("cp2k_density", monkeypatch)
    monkeypatch.setattr(module, "HERE", tmp_path)
    committed = json.loads((ROOT / "docs" / "evidence" / "cp2k_density.json").read_text())
    committees = {name: row["members"] for name, row in committed["committees"].items()}
    again = module.compare(list(committed["models"]), committees, committed["frames"], plot=False)
    assert (tmp_path / "cp2k_density.json").exists()
    assert again["frames"] == committed["frames"] and again["scales"] == committed["scales"]
    for field, values in committed["dft"].items():   # per scale, per frame
        assert [v for per_scale in again["dft"][field] for v in per_scale] == pytest.approx(
            [v for per_scale in values for v in per_scale], rel=1e-12, abs=1e-12), field
    assert again["density_g_cm3"] == pytest.approx(committed["density_g_cm3"], rel=1e-12)
    for group in ("models", "committees"):
        assert sorted(again[group]) == sorted(committed[group])
        for name, row in committed[group].items():
            for field in ("pressure_error_gpa", "energy_change_error_mev_per_atom", "force_rmse_ev_a"):
                assert again[group][name][field] == pytest.approx(row[field], rel=1e-6, abs=1e-9), (name, field)
            if group == "models":   # hqc-qiskit evaluate on the whole test file: the model's own float32
                for field, value in row["test_at_data_density"].items():
                    assert again[group][name]["test_at_data_density"][field] == pytest.approx(value, rel=1e-3), (name, field)
            if group == "committees":
                for field, values in row["spread"].items():
                    assert again[group][name]["spread"][field] == pytest.approx(values, rel=1e-6, abs=1e-9), name
    # the fine-tunes' training (validation) files: the shipped file, then `repeat` copies of the committed CP2K
    # results of its frames 0 and 1 scaled by each of `scales`
    import numpy as np

    from hqc_qiskit.data.dataset import load_labelled

    cp2k = ROOT / "docs" / "evidence" / "cp2k_stress"
    merged_files = {"train_plus_density": ("train", [0.94, 0.97, 1.03], 10),
                    "train_plus_density_wide": ("train", [0.94, 0.97, 1.03, 1.06], 10),
                    "val_plus_density": ("val", [0.94, 0.97, 1.03, 1.06], 1)}
    for name, (which, scales, repeat) in merged_files.items():
        base = load_labelled(ROOT / "data" / "si_liquid_3000K" / f"si_liquid_3000K.{which}.extxyz.gz")
        merged = load_labelled(ROOT / "runs" / "density" / f"{name}.extxyz.gz")
        extra = merged[len(base):]
        assert len(extra) == repeat * 2 * len(scales), name
        np.testing.assert_array_equal(merged[len(base) - 1].positions, base[-1].positions)
        assert sorted({(a.info[f"{which}_frame"], a.info["scale"]) for a in extra}) == [(k, s) for k in (0, 1) for s in sorted(scales)]
        for atoms in extra:
            k, scale = atoms.info[f"{which}_frame"], atoms.info["scale"]
            dft = json.loads((cp2k / f"{which}.frame{k}.scale{scale:g}.converged.json").read_text())
            assert atoms.get_potential_energy() == pytest.approx(dft["energy_ev"], abs=1e-6)
            np.testing.assert_allclose(atoms.get_forces(), dft["forces_ev_a"], atol=1e-6)
            np.testing.assert_allclose(atoms.get_stress(voigt=False), dft["stress_ev_a3"], atol=1e-9)
            np.testing.assert_allclose(atoms.positions, base[k].positions * scale, atol=1e-6)


def test_label_noise_report_is_reproduced():
    """docs/results.md "How converged are the labels?": docs/evidence/cp2k_label_noise.json follows from the
    committed converged CP2K results and the shipped labels, and a model's forces give its numbers now."""
    import numpy as np

    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.data.dataset import load_labelled

    evidence = ROOT / "docs" / "evidence"
    report = json.loads((evidence / "cp2k_label_noise.json").read_text())
    frames = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.test.extxyz.gz")
    conv = {r["frame"]: json.loads((evidence / "cp2k_stress" / f"frame{r['frame']}.converged.json").read_text())
            for r in report["frames"]}
    assert sorted(conv) == list(range(8))
    for row in report["frames"]:
        c, atoms = conv[row["frame"]], frames[row["frame"]]
        assert c["label_energy_ev"] == atoms.get_potential_energy()
        assert row["label_minus_converged_mev"] == pytest.approx(1000 * (atoms.get_potential_energy() - c["energy_ev"]), abs=1e-9)
        assert row["label_minus_converged_mev"] > 0   # every label above the converged minimum
    diff = np.concatenate([frames[k].get_forces() - np.array(c["forces_ev_a"]) for k, c in conv.items()])
    assert np.sqrt(np.mean(diff**2)) == pytest.approx(report["label_force_rms_vs_converged_ev_a"], rel=1e-9)
    calc = HQCCalculator(ROOT / "runs" / "l2_hqc_cz_long", dtype="float64")
    pred = []
    for k in conv:
        atoms = frames[k].copy()
        atoms.calc = calc
        pred.append(atoms.get_forces())
    error = np.array(pred) - np.array([c["forces_ev_a"] for c in conv.values()])
    assert np.sqrt(np.mean(error**2)) == pytest.approx(
        report["models"]["runs/l2_hqc_cz_long"]["force_rmse_vs_converged_ev_a"], rel=1e-6)


def test_shot_forces_report_is_reproduced():
    """docs/results.md "Shot-based forces": docs/evidence/shot_forces.json's fit and shot counts follow from its
    rows, and one of its seeded Aer measurements gives the same numbers now."""
    import numpy as np

    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.data.dataset import read_structures
    from hqc_qiskit.quantum.backends import make_backend
    from hqc_qiskit.quantum.shot_forces import estimate_forces

    report = json.loads((ROOT / "docs" / "evidence" / "shot_forces.json").read_text())
    uniform = [r for r in report["ideal"] if r["allocation"] == "uniform"]
    s = np.array([r["shots_per_circuit"] for r in uniform], float)
    err = np.array([r["force_rms_error_ev_a"] for r in uniform])
    a = np.exp(np.mean(np.log(err * np.sqrt(s))))
    assert a == pytest.approx(report["fit"]["a_ev_a_sqrt_shots"], rel=1e-9)
    assert report["fit"]["loglog_slope"] == pytest.approx(np.polyfit(np.log(s), np.log(err), 1)[0], rel=1e-9)
    for target in report["shots_needed"].values():
        assert target["shots_per_circuit"] == int(np.ceil((a / target["force_rms_ev_a"]) ** 2))
        assert target["shots_per_structure"] == target["shots_per_circuit"] * report["circuits_per_structure"]
    row = next(r for r in uniform if r["frame"] == 0 and r["shots_per_circuit"] == 3000)
    model = load_model(ROOT / report["model"]).double()
    atoms = read_structures(ROOT / report["data"])[0]
    est = estimate_forces(model, atoms, make_backend("aer"), 3000, rng=np.random.default_rng(3000 % 97),
                          uncertainty=False)
    assert np.sqrt(np.mean((est.forces - est.exact_forces) ** 2)) == pytest.approx(row["force_rms_error_ev_a"], rel=1e-6)


def test_shot_md_report_follows_from_its_runs_and_the_runs_from_the_command(tmp_path):
    """docs/results.md "MD on shot-based forces": each Langevin condition's mean temperature in
    docs/evidence/shot_md.json is the mean over its runs' logs (last two thirds), and the first 20 steps of the
    committed 2-shot run come out of `hqc-qiskit md` again, row for row."""
    import numpy as np

    from hqc_qiskit.calculator import HQCShotCalculator
    from hqc_qiskit.data.dataset import read_structures
    from hqc_qiskit.md import MDOptions, run_md
    from hqc_qiskit.runlog import read_rows

    report = json.loads((ROOT / "docs" / "evidence" / "shot_md.json").read_text())
    runs = ROOT / "runs" / "simulation" / "shot_md"
    for cond in report["langevin_conditions"]:
        means = []
        for chain in cond["chains"]:
            temps = np.array([r["T_K"] for r in read_rows(runs / chain / "md_log.csv")])
            means.append(temps[int(len(temps) / 3):].mean())
        assert cond["mean_T_K"] == pytest.approx(np.mean(means), rel=1e-12)
    summary = json.loads((runs / "langevin_aer_2" / "md_summary.json").read_text())
    opt = MDOptions(**{**summary["options"], "steps": 20})
    calc = HQCShotCalculator(ROOT / report["model"], backend="aer", shots=2, seed=[opt.seed, 1], force_uncertainty=False)
    start = read_structures(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.test.extxyz.gz")[0]
    run_md(start, calc, opt, tmp_path)
    again = read_rows(tmp_path / "md_log.csv")
    committed = read_rows(runs / "langevin_aer_2" / "md_log.csv")[:len(again)]
    assert [r["step"] for r in again] == [0, 10, 20]
    for new, old in zip(again, committed):
        for key in ("T_K", "E_pot_eV", "E_pot_exact_eV", "force_noise_rms_eV_A", "force_noise_est_eV_A"):
            assert new[key] == pytest.approx(old[key], rel=1e-6), key


def test_sampling_cost_report_follows_from_its_runs_and_the_mc_run_from_the_command(tmp_path):
    """docs/results.md "Sampling cost: MD or MC on a QPU": the long exact MD chain's tau in
    docs/evidence/sampling_cost.json comes out of its committed log again, each setting's QPU time per independent
    sample is that tau times the cost model's QPU seconds per step (docs/evidence/shot_md.json), and the first 30
    steps of the committed 2000-shot MC chain come out of `hqc-qiskit mc` again, row for row."""
    import numpy as np
    from typer.testing import CliRunner

    from hqc_qiskit.autocorr import series_stats
    from hqc_qiskit.cli import app
    from hqc_qiskit.runlog import read_rows

    report = json.loads((ROOT / "docs" / "evidence" / "sampling_cost.json").read_text())
    sim = ROOT / "runs" / "simulation"
    groups = {g["group"]: g for g in report["groups"]}
    rows = read_rows(sim / "sampling_cost" / "md_langevin_exact" / "md_log.csv")
    again = series_stats(np.array([r["E_pot_eV"] for r in rows[int(len(rows) * report["skip_fraction"]):]]) / 64, 10)
    assert groups["MD exact, long"]["exact_epot"]["tau_steps"] == pytest.approx(again.tau_steps, rel=1e-9)
    cost = json.loads((ROOT / "docs" / "evidence" / "shot_md.json").read_text())["cost_ibm_brisbane"]
    for s in report["settings"]:
        kind = "md_step" if s["setting"].startswith("MD") else "mc_step"   # an MC step measures one energy
        per_step = cost[f"{kind}_{s['shots_per_circuit']}_shots"]["qpu_seconds"]
        assert s["qpu_seconds_per_step"] == pytest.approx(per_step)
        assert s["qpu_seconds_per_independent_epot"] == pytest.approx(per_step * groups[s["tau_from"]]["exact_epot"]["tau_steps"])
    committed = sim / "sampling_cost" / "mc_tuned_aer_2000"
    opt = json.loads((committed / "mc_summary.json").read_text())["options"]
    args = ["mc", str(ROOT / report["model"]), "--temperature", "2000", "--delta", str(opt["delta"]), "--steps", "30",
            "--sample-every", str(opt["sample_every"]), "--backend", "aer", "--shots", str(opt["shots"]),
            "--out", str(tmp_path / "mc"), "--no-progress"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    new, old = read_rows(tmp_path / "mc" / "mc_log.csv"), read_rows(committed / "mc_log.csv")[:30]
    assert len(new) == 30
    for a, b in zip(new, old):
        for key in ("energy_eV", "trial_energy_eV", "sigma_eV", "accepted"):
            assert a[key] == pytest.approx(b[key], rel=1e-9), key


def test_isobaric_mc_runs_follow_from_the_command_and_agree_with_npt_md(tmp_path):
    """docs/results.md "Isobaric Monte Carlo": each committed chain's summary averages come out of its (gzipped) log,
    its first 300 steps come out of `hqc-qiskit mc --ensemble npt` again row for row, and its mean density agrees with
    the NPT MD run of the same model within 3 combined standard errors (batch means, docs/evidence/npt_mc_vs_md.json,
    which test_evidence_follows_from_its_runs recomputes)."""
    import csv
    import gzip

    from typer.testing import CliRunner

    from hqc_qiskit.cli import app
    from hqc_qiskit.mc_driver import MCOptions, chain_averages
    from hqc_qiskit.runlog import read_rows

    npt = ROOT / "runs" / "density" / "npt"
    evidence = json.loads((ROOT / "docs" / "evidence" / "npt_mc_vs_md.json").read_text())
    for name, model in (("zbl", "small_l2_hqc_cz_density_zbl"), ("closepair", "small_l2_hqc_cz_density_closepair_dense_zbl")):
        run = npt / f"{name}_p10_mc"
        summary = json.loads((run / "mc_summary.json").read_text())
        with gzip.open(run / "mc_log.csv.gz", "rt") as fh:
            rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        opt = MCOptions(**summary["options"])
        assert len(rows) == summary["steps"] == opt.steps
        again = chain_averages(rows, opt, summary["n_atoms"], shot_based=False)
        for key in ("density_g_cm3", "energy_eV_per_atom"):
            assert again[key]["mean"] == pytest.approx(summary["averages"][key]["mean"], rel=1e-9)
        assert abs(evidence["models"][name]["z"]) < 3
        args = ["mc", str(ROOT / "runs" / "density" / model), "--ensemble", "npt", "--pressure", str(opt.pressure),
                "--temperature", str(opt.temperature), "--steps", "300", "--adapt-steps", str(opt.adapt_steps),
                "--delta", str(opt.delta), "--sample-every", str(opt.sample_every), "--out", str(tmp_path / name),
                "--no-progress"]
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0, done.output
        new = read_rows(tmp_path / name / "mc_log.csv")
        assert len(new) == 300
        for a, b in zip(new, rows):
            for key in ("energy_eV", "accepted", "volume_A3", "delta_A", "max_dlnv"):
                assert a[key] == pytest.approx(b[key], rel=1e-9), (name, a["step"], key)


def test_noise_aware_report_is_reproduced():
    """docs/results.md "Noise-aware fine-tuning": the noisy-readout rows of the Eagle run's report re-evaluate from
    the checkpoints they name, and the committed coefficients of a readout are what the backend's noise
    simulation of its circuit gives now."""
    import numpy as np

    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.quantum.backends import make_backend
    from hqc_qiskit.quantum.noisy_readout import noisy_coefficients

    run = ROOT / "runs" / "noise_aware" / "l2_hqc_cz_eagle"
    report = json.loads((run / "noise_aware.json").read_text())
    rows = [r for r in report["rows"] if r["noise_scale"] == report["noise_scale"]]
    assert {r["model"] for r in rows} == {"source", "noise-aware"}
    for row in rows:
        again = evaluate(ROOT / row["checkpoint"], ROOT / report["test_data"], device="cpu")
        for key in ("rmse_e_mev_atom", "rmse_f_ev_a"):
            assert again[key] == pytest.approx(row[key], rel=1e-4), (row["checkpoint"], key)
    circuit = load_model(run).readouts[0].circuit
    simulated = noisy_coefficients(make_backend(report["noise_backend"], scale=report["noise_scale"]), circuit.name,
                                   circuit.n_qubits, circuit.n_layers, circuit.weight.double().numpy())
    assert np.max(np.abs(simulated - circuit.coefficients.double().numpy())) < 1e-6


@pytest.mark.parametrize("device", ["eagle", "heron"])
def test_noise_aware_runs_with_trained_circuits_re_evaluate(device):
    """docs/results.md "Training the circuits through the noise": the fine-tuned model's noisy-readout rows
    re-evaluate from their checkpoints, its coefficients recomputed from its trained circuit weights (Heisenberg
    construction) on loading, and its circuit weights are not the source's."""
    from hqc_qiskit.checkpoint import load_model

    run = ROOT / "runs" / "noise_aware" / f"l2_hqc_cz_{device}_circuits"
    report = json.loads((run / "noise_aware.json").read_text())
    rows = [r for r in report["rows"] if r["model"] == "noise-aware" and r["readouts"] == "noisy"]
    assert {r["noise_scale"] for r in rows} == {1.0, 0.8, 1.25}
    for row in rows:
        again = evaluate(ROOT / row["checkpoint"], ROOT / report["test_data"], device="cpu")
        for key in ("rmse_e_mev_atom", "rmse_f_ev_a"):
            assert again[key] == pytest.approx(row[key], rel=1e-4), (row["checkpoint"], key)
    tuned, source = load_model(run), load_model(ROOT / report["source"])
    assert tuned.config.readout.train_circuit_weights
    assert max(float((a.circuit.weight - b.circuit.weight).abs().max())
               for a, b in zip(tuned.readouts, source.readouts)) > 1e-3


def test_npt_and_close_pair_reports_are_reproduced(monkeypatch, tmp_path):
    """docs/results.md "Short-range repulsion" (and "What it changes in an NPT run"): docs/evidence/cp2k_npt.json
    and cp2k_close_pair.json are what their scripts compute now from the committed trajectories, CP2K results and
    checkpoints (compare run again, written elsewhere)."""
    for name in ("cp2k_npt", "cp2k_close_pair"):
        module = _evidence_module(name, monkeypatch)
        monkeypatch.setattr(module, "HERE", tmp_path)
        committed = json.loads((ROOT / "docs" / "evidence" / f"{name}.json").read_text())
        again = module.compare() if name == "cp2k_npt" else module.compare(plot_to=None)
        assert (tmp_path / f"{name}.json").exists()
        _assert_close_nested(json.loads(json.dumps(again)), committed, name)
    # the training data's closest pair that both quote (hqc-qiskit data info on the shipped training file)
    from hqc_qiskit.data.dataset import closest_pair, load_labelled

    train = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz")
    assert round(min(closest_pair(a, 2.5)[2] for a in train), 2) == module.TRAINING_CLOSEST_PAIR == 1.87


def _assert_close_nested(again, committed, where: str) -> None:
    """Same keys and strings; numbers equal within rel 1e-6 (model evaluations and numpy reductions, float64)."""
    if isinstance(committed, dict):
        assert sorted(again) == sorted(committed), where
        for key, value in committed.items():
            _assert_close_nested(again[key], value, f"{where}.{key}")
    elif isinstance(committed, list):
        assert len(again) == len(committed), where
        for k, (a, c) in enumerate(zip(again, committed)):
            _assert_close_nested(a, c, f"{where}[{k}]")
    elif isinstance(committed, (int, float)) and not isinstance(committed, bool):
        assert again == pytest.approx(committed, rel=1e-6, abs=1e-9), where
    else:
        assert again == committed, where


@pytest.mark.parametrize("name", ["noise_aware", "noise_aware_circuits", "noise_calibration", "npt_mc_vs_md",
                                  "npt_mc_seeds"])
def test_evidence_follows_from_its_runs(name, monkeypatch):
    """docs/evidence/<name>.json (the numbers of its docs/results.md section) is what docs/evidence/<name>.py
    gathers from the committed runs now (numbers within rel 1e-6: numpy's sums and dot products differ in the last
    bits between CPUs: npt_mc_vs_md's autocorrelation functions came out 1e-16 apart on another machine)."""
    module = _evidence_module(name, monkeypatch)
    _assert_close_nested(module.gather(), json.loads((ROOT / "docs" / "evidence" / f"{name}.json").read_text()), name)


def test_mc_remeasure_evidence_follows_from_its_chain(monkeypatch):
    """docs/results.md, the --remeasure paragraph of "Sampling cost": docs/evidence/mc_remeasure.json is what its
    script gathers from the committed chain now (the exact energies of its frames evaluated again), and the fresh
    estimates there are unbiased against the exact energies where the kept ones are low."""
    module = _evidence_module("mc_remeasure", monkeypatch)
    again, committed = module.gather(), json.loads((ROOT / "docs" / "evidence" / "mc_remeasure.json").read_text())
    # the exact energies are the model's own float32 evaluations, which differ in the last bit between CPUs (one
    # float32 step at 106 eV/atom is 7.6e-6 eV/atom: an AMD EPYC and an Intel Xeon differ by that); the logged ones
    # are read back exactly
    assert again["per_frame_eV_per_atom"]["exact"] == pytest.approx(committed["per_frame_eV_per_atom"]["exact"], abs=5e-5)
    for key in ("fresh", "kept"):
        assert again["per_frame_eV_per_atom"][key] == pytest.approx(committed["per_frame_eV_per_atom"][key], rel=1e-9)
    for key in ("fresh_minus_exact_mev_per_atom", "kept_minus_exact_mev_per_atom"):   # meV/atom
        assert again[key] == pytest.approx(committed[key], abs=0.05)
    assert again["frame_steps"] == committed["frame_steps"] and again["summary_averages"] == committed["summary_averages"]
    for key in ("z_mean", "z_std"):   # (kept - exact + beta s^2) / s: a float32 step of exact is 5e-4 eV a structure
        assert again["reusing_chain_z"][key] == pytest.approx(committed["reusing_chain_z"][key], abs=2e-3)
    fresh, kept = committed["fresh_minus_exact_mev_per_atom"], committed["kept_minus_exact_mev_per_atom"]
    assert abs(fresh["mean"]) < 2 * fresh["stderr"] and kept["mean"] < -3 * kept["stderr"]


def test_noise_calibration_is_reproduced(tmp_path):
    """docs/results.md "Calibrating the noise scale": the committed x1.25 calibration comes out again from its
    own command (same seed: same circuits, same simulated shots), every committed fit recovers its stand-in
    device's known scale within three standard errors (the other noise model is rejected), and the model re-tuned
    at the x1.25 fit re-evaluates to its report on the true x1.25."""
    from typer.testing import CliRunner

    from hqc_qiskit.cli import app

    root = ROOT / "runs" / "noise_calibration"
    for name in ("eagle_x0.8", "eagle_x1", "eagle_x1.25", "runtime_fake_brisbane"):
        fit = json.loads((root / name / "noise_calibration.json").read_text())
        truth = fit["backend_noise_scale"] or 1.0        # the runtime's local mode: the snapshot's full-chip model
        assert abs(fit["fitted_scale"] - truth) < 3 * fit["stderr"], name
        assert fit["p_value"] > 1e-3, name
    for name in ("thermal", "drifted"):           # noise of another kind: rejected
        assert json.loads((root / name / "noise_calibration.json").read_text())["p_value"] < 1e-6, name
    old = json.loads((root / "eagle_x1.25" / "noise_calibration.json").read_text())
    args = ["noise-calibrate", str(ROOT / old["model"]), "--backend", old["backend"], "--noise-scale",
            str(old["backend_noise_scale"]), "--seed", str(old["seed"]), "--circuits", str(old["circuits_per_readout"]),
            "--shots", str(old["shots_per_circuit"]), "--structure", str(ROOT / old["structure"]), "--out", str(tmp_path)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    new = json.loads((tmp_path / "noise_calibration.json").read_text())
    for key in ("fitted_scale", "stderr", "chi2", "chi2_at_scale_1", "dof"):
        assert new[key] == pytest.approx(old[key], rel=1e-9), key
    # the model re-tuned at that fit, on the stand-in's true scale: its report row re-evaluates from its checkpoint
    report = json.loads((root / "eagle_retuned" / "noise_aware.json").read_text())
    assert report["noise_scale"] == round(old["fitted_scale"], 3)
    row = next(r for r in report["rows"] if r["model"] == "noise-aware" and r["noise_scale"] == 1.25)
    again = evaluate(ROOT / row["checkpoint"], ROOT / report["test_data"], device="cpu")
    for key in ("rmse_e_mev_atom", "rmse_f_ev_a"):
        assert again[key] == pytest.approx(row[key], rel=1e-4), key
    # the scale-re-tuned model on the device that drifted per qubit (cross_evaluate.py)
    cross = json.loads((root / "drift_retuned" / "cross_evaluation.json").read_text())
    again = evaluate(ROOT / cross["checkpoint"], ROOT / cross["test_data"], device="cpu")
    for key in ("rmse_e_mev_atom", "rmse_f_ev_a"):
        assert again[key] == pytest.approx(cross[key], rel=1e-4), key


def test_drift_study_snapshot_is_what_its_script_writes(tmp_path):
    """noise_models/brisbane_drift_study.* (the synthetic drifted device of "Calibrating the noise scale") is what
    runs/noise_calibration/make_drifted_snapshot.py writes now, byte for byte."""
    import importlib.util

    import yaml

    from hqc_qiskit.quantum.snapshots import CALIBRATION_SUFFIX, write_snapshot

    path = ROOT / "runs" / "noise_calibration" / "make_drifted_snapshot.py"
    spec = importlib.util.spec_from_file_location("make_drifted_snapshot", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = ROOT / "noise_models" / f"{module.NAME}.yaml"
    description = yaml.safe_load(committed.read_text())["description"]
    write_snapshot(module._Drifted(), module.NAME, tmp_path, description=description, placement=False)
    for suffix in (".yaml", CALIBRATION_SUFFIX):
        assert (tmp_path / f"{module.NAME}{suffix}").read_bytes() == (ROOT / "noise_models" / f"{module.NAME}{suffix}").read_bytes()


def test_fine_tune_training_files_hold_the_evidence_scripts_dft_labels(monkeypatch, tmp_path):
    """The committed training files of the density and close-pair fine-tunes are the shipped training file plus
    the DFT frames that cp2k_density.py and cp2k_close_pair.py `labels` write now from the committed CP2K results,
    each repeated 10 times: positions, energies, forces and stresses equal to the bit."""
    import numpy as np

    from hqc_qiskit.data.dataset import load_labelled

    density, close = _evidence_module("cp2k_density", monkeypatch), _evidence_module("cp2k_close_pair", monkeypatch)
    base = load_labelled(ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.train.extxyz.gz")
    extra = {"wide": density.write_labels([0.94, 0.97, 1.03, 1.06], tmp_path / "d.extxyz")}
    extra["closepair"] = close.write_labels(tmp_path / "c.extxyz", [1.5, 1.7])
    cases = {"train_plus_density_wide": ["wide"], "train_plus_density_closepair": ["wide", "closepair"]}
    if (ROOT / "runs" / "density" / "train_plus_density_closepair_dense.extxyz.gz").exists():
        extra["dense"] = close.write_labels(tmp_path / "c5.extxyz", [1.4, 1.5, 1.6, 1.7, 1.8])
        cases["train_plus_density_closepair_dense"] = ["wide", "dense"]
    for name, parts in cases.items():
        merged = load_labelled(ROOT / "runs" / "density" / f"{name}.extxyz.gz")
        expected = base + [a for part in parts for a in load_labelled(extra[part]) * 10]
        assert len(merged) == len(expected), name
        for k, (a, b) in enumerate(zip(merged, expected)):
            assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell[:], b.cell[:]), (name, k)
            assert a.get_potential_energy() == b.get_potential_energy(), (name, k)
            assert np.array_equal(a.get_forces(), b.get_forces()), (name, k)
            if "stress" in b.calc.results:
                assert np.array_equal(a.get_stress(), b.get_stress()), (name, k)
