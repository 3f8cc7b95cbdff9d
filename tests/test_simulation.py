"""MD, MC driver and g(r): energy conservation, thermostat temperature, exact resume, clear errors, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from typer.testing import CliRunner

from hqc_qiskit.calculator import HQCCalculator
from hqc_qiskit.cli import app
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.errors import HQCError
from hqc_qiskit.mc_driver import MCOptions
from hqc_qiskit.md import MDOptions, drift_mev_per_atom_ps, run_md, shot_noise_heating
from hqc_qiskit.rdf import compare_rdf, compute_rdf, first_peak, frame_rdf
from hqc_qiskit.runlog import StepLog, StepTrajectory, read_rows

from tests.conftest import DATA, ROOT, tiny_hqc_checkpoint

QUICK = ROOT / "runs" / "quick"          # the trained default model (committed)
TEST_FRAMES = DATA / "si_liquid_3000K.test.extxyz.gz"


class _Killed(Exception):
    """Stands for a run killed mid-way (the progress callback raises it)."""


def _kill_at(step_to_kill: int):
    def progress(step, _total):
        if step == step_to_kill:
            raise _Killed
    return progress


@pytest.fixture(scope="module")
def start():
    return read_structures(TEST_FRAMES)[0]


@pytest.fixture(scope="module")
def quick_calc():
    return HQCCalculator(QUICK, dtype="float64")


def test_nve_conserves_energy_with_the_trained_quick_model(start, quick_calc, tmp_path):
    summary = run_md(start, quick_calc, MDOptions(steps=300, ensemble="nve", log_every=5), tmp_path)
    rows = read_rows(tmp_path / "md_log.csv")
    e_tot = np.array([r["E_tot_eV"] for r in rows]) / len(start) * 1000.0       # meV/atom
    e_pot = np.array([r["E_pot_eV"] for r in rows]) / len(start) * 1000.0
    assert summary["stable"] and summary["steps"] == 300
    assert np.ptp(e_pot) > 20 * np.ptp(e_tot)              # energy flows between E_pot and E_kin, E_tot stays
    assert np.ptp(e_tot) < 1.0                                # meV/atom over 150 fs
    assert abs(summary["drift_conserved_mev_per_atom_ps"]) < 1.0


@pytest.mark.parametrize("thermostat", ["nose-hoover", "bussi"])
def test_nvt_mean_temperature(start, quick_calc, tmp_path, thermostat):
    opt = MDOptions(steps=600, thermostat=thermostat, temperature=1500.0, tdamp=25.0, log_every=2)
    summary = run_md(start, quick_calc, opt, tmp_path)
    assert summary["mean_T_K"] == pytest.approx(1500.0, rel=0.1)


@pytest.mark.parametrize("ensemble, thermostat", [("nvt", "nose-hoover"), ("nvt", "langevin"), ("npt", "nose-hoover")])
def test_md_resume_continues_identically(start, quick_calc, tmp_path, ensemble, thermostat):
    opt = dict(steps=40, ensemble=ensemble, thermostat=thermostat, log_every=5, traj_every=5, checkpoint_every=10,
               pressure=10.0 if ensemble == "npt" else 0.0, pdamp=25.0)   # GPa: a stable volume for the quick model
    run_md(start, quick_calc, MDOptions(**opt), tmp_path / "full")
    run_md(start, quick_calc, MDOptions(**{**opt, "steps": 20}), tmp_path / "cut")
    with pytest.raises(HQCError, match="--resume"):
        run_md(start, quick_calc, MDOptions(**opt), tmp_path / "cut")
    with pytest.raises(HQCError, match="timestep"):
        run_md(start, quick_calc, MDOptions(**{**opt, "timestep": 1.0}), tmp_path / "cut", resume=True)
    with pytest.raises(HQCError, match="already ran 20 steps, more than the 10 asked for"):
        run_md(start, quick_calc, MDOptions(**{**opt, "steps": 10}), tmp_path / "cut", resume=True)
    done = run_md(start, quick_calc, MDOptions(**opt), tmp_path / "cut", resume=True)
    assert run_md(start, quick_calc, MDOptions(**opt), tmp_path / "cut", resume=True) == done   # finished: same summary
    full, cut = read_rows(tmp_path / "full" / "md_log.csv"), read_rows(tmp_path / "cut" / "md_log.csv")
    assert [r["step"] for r in cut] == [r["step"] for r in full]
    np.testing.assert_allclose([r["E_tot_eV"] for r in cut], [r["E_tot_eV"] for r in full], rtol=0, atol=1e-9)
    a = read_structures(tmp_path / "full" / "md_traj.extxyz")
    b = read_structures(tmp_path / "cut" / "md_traj.extxyz")
    assert len(a) == len(b) == 9
    np.testing.assert_allclose(b[-1].positions, a[-1].positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b[-1].cell[:], a[-1].cell[:], rtol=0, atol=1e-10)
    if ensemble == "npt":
        assert abs(a[-1].get_volume() - start.get_volume()) > 1.0   # Å^3: the cell did move


def test_npt_keeps_its_conserved_energy_and_follows_the_pressure(start, quick_calc, tmp_path):
    """Isotropic MTK barostat on the model's stress: the extended energy is conserved, the volume moves, and
    a higher target pressure gives a smaller volume; a model without a stable density is stopped."""
    volumes = {}
    for pressure in (10.0, 20.0):   # GPa; the quick model says about 7 GPa at the data's density (DFT: 1-2)
        opt = MDOptions(steps=200, ensemble="npt", pressure=pressure, pdamp=100.0, tdamp=25.0, log_every=5)
        summary = run_md(start, quick_calc, opt, tmp_path / f"p{pressure:g}")
        rows = read_rows(tmp_path / f"p{pressure:g}" / "md_log.csv")
        e_cons = np.array([r["E_conserved_eV"] for r in rows]) / len(start) * 1000.0   # meV/atom
        e_pot = np.array([r["E_pot_eV"] for r in rows]) / len(start) * 1000.0
        assert summary["stable"] and np.ptp(e_pot) > 100 * np.ptp(e_cons)
        assert rows[0]["density_g_cm3"] == pytest.approx(2.329, abs=1e-3)   # the shipped data's density
        volumes[pressure] = rows[-1]["volume_A3"]
        # the mean density and pressure come with autocorrelation-aware error bars (not the fluctuation)
        tail = np.array([r["density_g_cm3"] for r in rows[len(rows) // 5:]])
        rho = summary["averages"]["density_g_cm3"]
        assert rho["mean"] == pytest.approx(tail.mean(), rel=1e-12) == pytest.approx(summary["mean_density_g_cm3"], rel=1e-12)
        assert rho["std"] == pytest.approx(summary["std_density_g_cm3"], rel=1e-12)
        assert tail.std() / np.sqrt(len(tail)) <= rho["stderr"] < rho["std"]
        assert summary["averages"]["P_GPa"]["mean"] == pytest.approx(summary["mean_P_GPa"], rel=1e-12)
    assert start.get_volume() - 100 > volumes[10.0] > volumes[20.0] + 100   # Å^3
    # at 0 GPa the quick model (trained at one density) expands without bound: stopped, not run on
    summary = run_md(start, quick_calc, MDOptions(steps=200, ensemble="npt", pdamp=100.0, log_every=5), tmp_path / "p0")
    assert not summary["stable"] and "starting volume" in summary["unstable_reason"]
    cluster = start[:10]
    cluster.pbc = False
    with pytest.raises(HQCError, match="npt needs a periodic structure"):
        run_md(cluster, quick_calc, MDOptions(steps=2, ensemble="npt"), tmp_path / "cluster")


def test_drift_fit():
    rows = [{"time_fs": t, "E_conserved_eV": 64 * 2e-3 * t / 1000.0} for t in range(0, 1001, 100)]   # 2 meV/atom/ps
    assert drift_mev_per_atom_ps(rows, 64) == pytest.approx(2.0)


def test_step_log_truncates_to_the_checkpoint(tmp_path):
    log = StepLog(tmp_path / "l.csv", ["x"])
    for s in range(1, 6):
        log.add(s, x=float(s))
    log.flush()
    again = StepLog(tmp_path / "l.csv", ["x"], resume_step=3)
    assert [r["step"] for r in again.rows()] == [1, 2, 3]
    with pytest.raises(HQCError, match="columns differ"):
        StepLog(tmp_path / "l.csv", ["y"], resume_step=3)


def test_gzipped_trajectory_reads_and_refuses_resume_clearly(tmp_path, start):
    """Committed MD/MC trajectories are gzipped: readable as they are, and resuming asks for a gunzip, not a fresh file."""
    import gzip
    import shutil

    traj = StepTrajectory(tmp_path / "t.extxyz")
    for step in (0, 5):
        traj.add(start, step)
    traj.flush()
    with open(traj.path, "rb") as src, gzip.open(tmp_path / "t.extxyz.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    traj.path.unlink()
    frames = read_structures(tmp_path / "t.extxyz.gz")
    assert [a.info["step"] for a in frames] == [0, 5]
    np.testing.assert_allclose(frames[1].positions, start.positions)
    with pytest.raises(HQCError, match="gunzip it"):
        StepTrajectory(tmp_path / "t.extxyz", resume_step=5)
    assert not traj.path.exists()


def test_rdf_matches_ase_and_finds_the_liquid_si_first_peak(start):
    from ase.geometry.rdf import get_rdf

    g_ase, _ = get_rdf(start, 5.0, 50)
    np.testing.assert_allclose(frame_rdf(start, 5.0, 50), g_ase, atol=1e-10)
    frames = read_structures(TEST_FRAMES)
    rdf = compute_rdf(frames, 5.0, 100, n_blocks=5)
    r1, g1 = first_peak(rdf)
    assert 2.3 < r1 < 2.5 and g1 > 1.5           # Si-Si bond length in the liquid
    assert np.all(rdf.err[rdf.r > 2.0] > 0)
    same = compare_rdf(rdf, rdf)
    assert same["integrated_sq_diff"] == 0 and same["first_peak_shift"] == 0
    hot = compute_rdf(frames[:10], 5.0, 100)
    assert compare_rdf(hot, rdf)["integrated_sq_diff"] > 0


def test_mc_driver_resumes_identically_with_shot_noise(tmp_path, start):
    """A chain killed mid-run and resumed equals an uninterrupted one, shot noise included; logs have no duplicates."""
    from hqc_qiskit.mc_driver import MCOptions, run_mc
    from hqc_qiskit.quantum.backends import make_backend

    model, _ = tiny_hqc_checkpoint(tmp_path)
    opt = MCOptions(steps=12, shots=500, checkpoint_every=4, sample_every=2, delta=0.05)
    full = run_mc(model, start, make_backend("aer"), opt, tmp_path / "full")

    with pytest.raises(_Killed):
        run_mc(model, start, make_backend("aer"), opt, tmp_path / "cut", progress=_kill_at(7))
    resumed = run_mc(model, start, make_backend("aer"), opt, tmp_path / "cut", resume=True)
    assert resumed["final_energy_eV"] == full["final_energy_eV"] and resumed["accepted"] == full["accepted"]
    assert resumed["shots_total"] == full["shots_total"] == 13 * 500 * 128
    full_rows, cut_rows = read_rows(tmp_path / "full" / "mc_log.csv"), read_rows(tmp_path / "cut" / "mc_log.csv")
    assert cut_rows == full_rows and len(cut_rows) == 12
    assert len(read_structures(tmp_path / "cut" / "mc_traj.extxyz")) == 7
    again = run_mc(model, start, make_backend("aer"), opt, tmp_path / "cut", resume=True)   # finished: nothing to do
    assert again == resumed
    with pytest.raises(HQCError, match="already ran 12 steps, more than the 8 asked for"):
        run_mc(model, start, make_backend("aer"), replace(opt, steps=8), tmp_path / "cut", resume=True)


def test_mc_exact_energies_are_the_models(tmp_path, start):
    from hqc_qiskit.mc_driver import MCOptions, energy_measure

    model, _ = tiny_hqc_checkpoint(tmp_path)
    calc = HQCCalculator(model=model)
    atoms = start.copy()
    atoms.calc = calc
    m = energy_measure(model, start, None, MCOptions())(start.positions, None)
    assert m.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8) and m.sigma == 0


def test_shots_to_match_interpolates():
    from hqc_qiskit.sim_studies import shots_to_match

    rows = [{"acceptance": "penalty", "shots": s, "integrated_sq_diff": d} for s, d in ((1000, 0.4), (10000, 0.1))]
    assert shots_to_match(rows, 0.25, "penalty") == pytest.approx(np.sqrt(1000 * 10000))
    assert np.isnan(shots_to_match(rows, 0.05, "penalty"))


def test_cli_md_mc_rdf(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    md = runner.invoke(app, ["md", str(QUICK), "--steps", "20", "--out", str(tmp_path / "md"), "--no-progress"])
    assert md.exit_code == 0, md.output
    assert "drift" in md.output and (tmp_path / "md" / "md_log.png").exists()
    # the summary's averages: over the log after its first fifth, with an autocorrelation-corrected error bar
    rows, avg = read_rows(tmp_path / "md" / "md_log.csv"), json.loads((tmp_path / "md" / "md_summary.json").read_text())
    e_pot = avg["averages"]["E_pot_eV_per_atom"]
    assert e_pot["mean"] == pytest.approx(np.mean([r["E_pot_eV"] / 64 for r in rows[len(rows) // 5:]]))
    assert e_pot["stderr"] > 0 and e_pot["tau_steps"] >= 1 and "mean E_pot" in " ".join(md.output.split())
    assert "error_bar_check" in avg      # batch means as a second opinion (empty for a log this short)
    rdf = runner.invoke(app, ["rdf", str(tmp_path / "md" / "md_traj.extxyz"), "--ref", str(TEST_FRAMES), "--r-max", "5",
                              "--out", str(tmp_path / "g")])
    assert rdf.exit_code == 0, rdf.output
    assert "integrated_sq_diff" in json.loads((tmp_path / "g.json").read_text())["comparison"]
    mc = runner.invoke(app, ["mc", str(QUICK), "--steps", "15", "--out", str(tmp_path / "mc"), "--no-progress"])
    assert mc.exit_code == 0, mc.output
    mc_summary, rows = json.loads((tmp_path / "mc" / "mc_summary.json").read_text()), read_rows(tmp_path / "mc" / "mc_log.csv")
    assert mc_summary["steps"] == 15 and "mean energy" in " ".join(mc.output.split())
    assert mc_summary["averages"]["energy_eV_per_atom"]["mean"] == pytest.approx(np.mean([r["energy_eV"] / 64 for r in rows[3:]]))
    assert "error_bar_check" in mc_summary
    _, hqc = tiny_hqc_checkpoint(tmp_path)
    dry = runner.invoke(app, ["mc", str(hqc), "--backend", "ibm_brisbane", "--shots", "50000", "--steps", "10", "--dry-run"])
    assert dry.exit_code == 0 and "total_qpu_seconds" in dry.output and "nothing was submitted" in dry.output
    live = runner.invoke(app, ["mc", str(hqc), "--backend", "ibm_brisbane", "--shots", "50000", "--out", str(tmp_path / "ibm")])
    assert live.exit_code == 2 and "save_account" in live.output and "fake_brisbane" in live.output
    assert not (tmp_path / "ibm").exists()         # failed before anything was run or written
    cmlp_on_aer = runner.invoke(app, ["mc", str(QUICK), "--backend", "aer", "--steps", "2", "--out", str(tmp_path / "x")])
    assert cmlp_on_aer.exit_code == 2 and "quantum readouts" in cmlp_on_aer.output


def test_cli_mc_remeasure_logs_and_averages_the_fresh_estimates(tmp_path):
    """--remeasure on a shot-based backend: the log carries each step's fresh estimate of its starting state, and the
    summary's <E> is their mean (unbiased), next to the kept estimates' mean as measured."""
    _, hqc = tiny_hqc_checkpoint(tmp_path)
    out = tmp_path / "mc"
    done = CliRunner().invoke(app, ["mc", str(hqc), "--backend", "aer", "--shots", "300", "--steps", "10", "--remeasure",
                                    "--out", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    rows, summary = read_rows(out / "mc_log.csv"), json.loads((out / "mc_summary.json").read_text())
    assert all(r["fresh_sigma_eV"] > 0 for r in rows)
    tail = rows[len(rows) // 5:]
    avg = summary["averages"]
    assert avg["energy_eV_per_atom"]["mean"] == pytest.approx(np.mean([r["fresh_energy_eV"] for r in tail]) / summary["n_atoms"])
    assert avg["energy_measured_eV_per_atom"]["mean"] == pytest.approx(np.mean([r["energy_eV"] for r in tail]) / summary["n_atoms"])
    assert "fresh estimates" in " ".join(done.output.split())
    # a rejected step keeps the fresh estimate as the current energy
    rejected = [r for r in rows if not r["accepted"]]
    assert rejected and all(r["energy_eV"] == r["fresh_energy_eV"] for r in rejected)


def test_mc_says_when_its_moves_are_too_small(tmp_path):
    """Tiny moves are almost always accepted and the chain forgets slowly: the command says so and how to tune."""
    runner = CliRunner()
    args = ["mc", str(QUICK), "--steps", "100", "--n-moved", "1", "--no-progress"]
    tiny = runner.invoke(app, [*args, "--delta", "0.001", "--out", str(tmp_path / "tiny")])
    assert tiny.exit_code == 0, tiny.output
    assert "moves are too small" in " ".join(tiny.output.split()) and "--adapt-steps" in tiny.output
    fine = runner.invoke(app, [*args, "--delta", "0.1", "--out", str(tmp_path / "fine")])
    acc = json.loads((tmp_path / "fine" / "mc_summary.json").read_text())["acceptance_ratio"]
    assert fine.exit_code == 0 and 0.15 <= acc <= 0.8 and "moves are too" not in fine.output


@pytest.mark.slow     # about 4 minutes: Aer simulates the whole 127-qubit device in local mode
def test_mc_on_a_fake_device_through_runtime_local_mode(tmp_path):
    """The hardware path end to end offline: the runtime Sampler in local mode on FakeBrisbane, job journal, resume."""
    from hqc_qiskit.runlog import read_rows

    _, hqc = tiny_hqc_checkpoint(tmp_path)
    out = tmp_path / "fake"
    runner = CliRunner()
    args = ["mc", str(hqc), "--backend", "fake_brisbane", "--shots", "64", "--out", str(out), "--no-progress"]
    first = runner.invoke(app, [*args, "--steps", "2"])
    assert first.exit_code == 0, first.output
    journal = sorted((out / "jobs").iterdir())
    assert len(journal) == 3                               # the start and two trial energies, one job each
    again = runner.invoke(app, [*args, "--steps", "3", "--resume"])
    assert again.exit_code == 0, again.output
    assert [r["step"] for r in read_rows(out / "mc_log.csv")] == [1, 2, 3]
    assert len(list((out / "jobs").iterdir())) == 4


@pytest.mark.parametrize("options, field", [
    (lambda: MDOptions(timestep=-1.0), "timestep"), (lambda: MDOptions(temperature=float("nan")), "temperature"),
    (lambda: MCOptions(delta=float("nan")), "delta"), (lambda: MCOptions(temperature=0.0), "temperature"),
    (lambda: MDOptions(tdamp=-5.0), "tdamp"), (lambda: MDOptions(friction=float("nan")), "friction"),
    (lambda: MCOptions(adapt_steps=-3), "adapt_steps"), (lambda: MDOptions(pdamp=0.0), "pdamp"),
    (lambda: MDOptions(pressure=float("inf")), "pressure"), (lambda: MDOptions(pressure=1.0), "pressure"), (lambda: MDOptions(ensemble="npt", thermostat="bussi"), "npt"),
    (lambda: MCOptions(pressure=1.0), "pressure"), (lambda: MCOptions(ensemble="npt", pressure=float("nan")), "pressure"),
    (lambda: MCOptions(ensemble="npt", volume_probability=1.0), "volume_probability"),
    (lambda: MCOptions(ensemble="npt", max_dlnv=0.0), "max_dlnv")])
def test_simulation_options_refuse_non_positive_and_nan(options, field):
    with pytest.raises(HQCError, match=f"^{field} must "):
        options().validate()


@pytest.mark.parametrize("args", [dict(r_max=-1.0), dict(r_max=float("nan")), dict(n_bins=0), dict(n_blocks=0)])
def test_rdf_refuses_bad_settings(val_frames, args):
    with pytest.raises(HQCError, match="g\\(r\\) needs r_max > 0"):
        compute_rdf(val_frames[:2], **args)


def test_mc_refuses_more_moved_atoms_than_the_structure_has(tmp_path, start):
    from hqc_qiskit.mc_driver import MCOptions, run_mc
    from hqc_qiskit.quantum.backends import make_backend
    from hqc_qiskit.quantum.estimate import readout_problem, shots_per_circuit

    model, _ = tiny_hqc_checkpoint(tmp_path)
    with pytest.raises(HQCError, match=f"n_moved {len(start) + 1} exceeds the {len(start)} atoms"):
        run_mc(model, start, make_backend("exact"), MCOptions(steps=2, n_moved=len(start) + 1), tmp_path / "mc")
    assert not (tmp_path / "mc").exists()   # refused before writing anything
    with pytest.raises(HQCError, match="shots must be at least 2 per circuit .*, got -5"):
        shots_per_circuit(readout_problem(model.double(), start), -5)


def test_isobaric_mc_moves_the_cell_measures_with_it_and_resumes_identically(tmp_path, start):
    """npt: only accepted volume moves change the volume; energies are the model's in the moved cell; samples carry
    the cell; the summary averages the density; a killed chain resumes into the uninterrupted one."""
    from hqc_qiskit.mc_driver import run_mc

    model, _ = tiny_hqc_checkpoint(tmp_path)
    model = model.double()
    opt = MCOptions(steps=30, ensemble="npt", pressure=10.0, temperature=3000.0, volume_probability=0.4,
                    max_dlnv=0.02, delta=0.05, checkpoint_every=5, sample_every=5)
    full = run_mc(model, start, None, opt, tmp_path / "full")
    rows = read_rows(tmp_path / "full" / "mc_log.csv")
    volumes = [start.get_volume()] + [r["volume_A3"] for r in rows]
    moved = [r for r, before in zip(rows, volumes) if abs(r["volume_A3"] - before) > 1e-8 * before]   # log: 10 digits
    assert moved and all(r["volume_move"] == 1 and r["accepted"] == 1 for r in moved)
    assert full["volume_accepted"] == len(moved) and full["volume_moves"] == sum(r["volume_move"] for r in rows)
    samples = read_structures(tmp_path / "full" / "mc_traj.extxyz")
    calc = HQCCalculator(model=model)
    for frame in samples:
        row = rows[frame.info["step"] - 1] if frame.info["step"] else None
        assert frame.get_volume() == pytest.approx(row["volume_A3"] if row else start.get_volume(), rel=1e-9)
        frame.calc = calc
        assert frame.get_potential_energy() == pytest.approx(frame.info["energy_eV"], abs=1e-6)
    tail = rows[len(rows) // 5:]
    assert full["averages"]["density_g_cm3"]["mean"] == pytest.approx(np.mean([r["density_g_cm3"] for r in tail]))
    assert full["final_density_g_cm3"] == pytest.approx(rows[-1]["density_g_cm3"])

    with pytest.raises(_Killed):
        run_mc(model, start, None, opt, tmp_path / "cut", progress=_kill_at(13))
    resumed = run_mc(model, start, None, opt, tmp_path / "cut", resume=True)
    assert read_rows(tmp_path / "cut" / "mc_log.csv") == rows
    assert resumed["final_energy_eV"] == full["final_energy_eV"] and resumed["volume_accepted"] == full["volume_accepted"]
    # a finished chain extended in place (--steps grown on resume) is the chain run that long from the start
    longer = replace(opt, steps=45)
    extended = run_mc(model, start, None, longer, tmp_path / "cut", resume=True)
    straight = run_mc(model, start, None, longer, tmp_path / "long")
    assert read_rows(tmp_path / "cut" / "mc_log.csv") == read_rows(tmp_path / "long" / "mc_log.csv")
    assert extended["final_energy_eV"] == straight["final_energy_eV"] and extended["steps"] == 45


def test_isobaric_mc_with_shots_measures_in_the_moved_cell(tmp_path, start):
    """Shot-based (aer): every saved sample's estimate is the model's energy in that sample's cell, within its noise."""
    from hqc_qiskit.mc_driver import run_mc
    from hqc_qiskit.quantum.backends import make_backend

    model, _ = tiny_hqc_checkpoint(tmp_path)
    model = model.double()
    opt = MCOptions(steps=8, ensemble="npt", pressure=10.0, temperature=3000.0, volume_probability=0.5, max_dlnv=0.05,
                    shots=2000, sample_every=1, delta=0.05)
    run_mc(model, start, make_backend("aer"), opt, tmp_path / "aer")
    samples = read_structures(tmp_path / "aer" / "mc_traj.extxyz")
    assert len({round(f.get_volume(), 6) for f in samples}) > 1        # some volume move was accepted
    calc = HQCCalculator(model=model)
    for frame in samples:
        frame.calc = calc
        assert abs(frame.get_potential_energy() - frame.info["energy_eV"]) < 5 * frame.info["sigma_eV"]


def test_isobaric_mc_refuses_what_it_cannot_do(tmp_path, start):
    from hqc_qiskit.mc_driver import run_mc

    model, _ = tiny_hqc_checkpoint(tmp_path)
    molecule = start.copy()
    molecule.pbc = False
    with pytest.raises(HQCError, match="npt needs a periodic structure"):
        run_mc(model, molecule, None, MCOptions(steps=2, ensemble="npt"), tmp_path / "mc")
    with pytest.raises(HQCError, match="unknown ensemble 'nph'"):
        MCOptions(ensemble="nph").validate()
    with pytest.raises(HQCError, match="volume_probability and max_dlnv set the volume moves of npt; nvt makes none"):
        MCOptions(max_dlnv=0.05).validate()


def test_mc_resumes_a_checkpoint_written_before_volume_moves_existed(tmp_path, start):
    """An older checkpoint lacks the npt options; it ran canonical, so it resumes as such."""
    from hqc_qiskit.mc_driver import LATER_OPTIONS, run_mc

    model, _ = tiny_hqc_checkpoint(tmp_path)
    opt = MCOptions(steps=4, checkpoint_every=2, delta=0.05)
    run_mc(model, start, None, opt, tmp_path / "mc")
    ckpt = tmp_path / "mc" / "mc_checkpoint.json"
    saved = json.loads(ckpt.read_text())
    for key in LATER_OPTIONS:
        del saved["extra"]["options"][key]
    ckpt.write_text(json.dumps(saved))
    assert run_mc(model, start, None, MCOptions(steps=6, checkpoint_every=2, delta=0.05), tmp_path / "mc", resume=True)["steps"] == 6
    with pytest.raises(HQCError, match="ensemble: 'nvt' then, 'npt' now"):
        run_mc(model, start, None, MCOptions(steps=8, checkpoint_every=2, delta=0.05, ensemble="npt"), tmp_path / "mc", resume=True)


def test_noisy_chain_from_before_the_noise_scaled_target_resumes_as_it_ran(tmp_path, start):
    """An older shot-based checkpoint adapted towards the absolute target. Past its adaptation the target steers
    nothing, so it resumes with default options and keeps its own; still adapting, it must be told which."""
    from hqc_qiskit.mc_driver import run_mc
    from hqc_qiskit.quantum.backends import make_backend

    model, _ = tiny_hqc_checkpoint(tmp_path)
    for name, adapt, steps in (("past", 2, 4), ("adapting", 6, 4)):
        opt = MCOptions(steps=steps, checkpoint_every=2, delta=0.05, shots=200, adapt_steps=adapt, noise_scaled_target=False)
        run_mc(model, start, make_backend("aer"), opt, tmp_path / name)
        ckpt = tmp_path / name / "mc_checkpoint.json"
        saved = json.loads(ckpt.read_text())
        del saved["extra"]["options"]["noise_scaled_target"]
        ckpt.write_text(json.dumps(saved))
    more = MCOptions(steps=6, checkpoint_every=2, delta=0.05, shots=200, adapt_steps=2)
    summary = run_mc(model, start, make_backend("aer"), more, tmp_path / "past", resume=True)
    assert summary["steps"] == 6 and summary["options"]["noise_scaled_target"] is False
    assert 0 < summary["noise_acceptance_ceiling"] < 1
    with pytest.raises(HQCError, match="noise_scaled_target: False then, True now"):
        run_mc(model, start, make_backend("aer"), MCOptions(steps=6, checkpoint_every=2, delta=0.05, shots=200,
                                                            adapt_steps=6), tmp_path / "adapting", resume=True)


def test_cli_mc_npt(tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["mc", str(QUICK), "--ensemble", "npt", "--pressure", "5", "--temperature", "3000",
                               "--steps", "20", "--volume-probability", "0.5", "--out", str(tmp_path / "npt"), "--no-progress"])
    assert done.exit_code == 0, done.output
    summary = json.loads((tmp_path / "npt" / "mc_summary.json").read_text())
    text = " ".join(done.output.split())
    assert f"acceptance {summary['volume_acceptance_ratio']:.3f}" in text and "mean density" in text and "at 5 GPa" in text
    assert (tmp_path / "npt" / "mc_log.png").exists() and summary["options"]["pressure"] == 5.0
    outside = summary["samples_outside_training"]["frames_outside_densities"]   # quick: trained at one density
    assert outside and f"{outside} of 3 saved samples lie outside the training densities" in text
    nvt = runner.invoke(app, ["mc", str(QUICK), "--pressure", "5", "--steps", "2", "--out", str(tmp_path / "x")])
    assert nvt.exit_code == 2 and "pressure must be 0 unless the ensemble is npt" in " ".join(nvt.output.split())
    assert not (tmp_path / "x").exists()


def test_shipped_defaults_are_found_from_any_directory(tmp_path, monkeypatch):
    """md/mc default to the shipped test structure (and mc to the shipped HQC run): found from the checkout
    when the command runs elsewhere; a path the user typed is taken as typed."""
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    md = runner.invoke(app, ["md", str(QUICK), "--steps", "2", "--out", "md", "--no-progress"])
    assert md.exit_code == 0, md.output
    mc = runner.invoke(app, ["mc", "--steps", "2", "--out", "mc", "--no-progress"])
    assert mc.exit_code == 0, mc.output
    typed = runner.invoke(app, ["md", str(QUICK), "--steps", "2", "--out", "md2", "--no-progress",
                                "--structure", "data/si_liquid_3000K/si_liquid_3000K.val.extxyz.gz"])
    assert typed.exit_code == 2 and "file does not exist" in typed.output


def test_md_watched_by_a_committee(start, quick_calc, tmp_path):
    """A committee member (the shipped run's last checkpoint) watches MD driven by its best model: the logged
    deviation is the members' force deviation on the logged structure; a trust level stops the run, checkpoint
    kept; a resume must name the same committee."""
    from hqc_qiskit.metrics import force_deviation

    last = str(QUICK / "checkpoint.pt")
    member = HQCCalculator(last, dtype="float64")
    opt = dict(steps=30, log_every=5, traj_every=5, committee=[last])
    summary = run_md(start, quick_calc, MDOptions(**opt), tmp_path / "watched", committee=[member])
    rows = read_rows(tmp_path / "watched" / "md_log.csv")
    frames = read_structures(tmp_path / "watched" / "md_traj.extxyz")
    assert [r["step"] for r in rows] == [a.info["step"] for a in frames] == [0, 5, 10, 15, 20, 25, 30]
    for row, atoms in zip(rows, frames):
        forces = [quick_calc.get_forces(atoms.copy()), member.get_forces(atoms.copy())]
        assert row["max_force_dev_eV_A"] == pytest.approx(force_deviation(forces).max(), rel=1e-6, abs=1e-9)
        assert row["max_force_dev_eV_A"] > 1e-4
    assert summary["max_force_dev_max_eV_A"] == pytest.approx(max(r["max_force_dev_eV_A"] for r in rows))
    stopped = run_md(start, quick_calc, MDOptions(**opt, max_force_dev=1e-6), tmp_path / "stopped", committee=[member])
    assert not stopped["stable"] and "committee force deviation" in stopped["unstable_reason"] and stopped["steps"] == 5
    assert (tmp_path / "stopped" / "md_checkpoint.json").exists()
    with pytest.raises(HQCError, match="committee"):
        run_md(start, quick_calc, MDOptions(**{**opt, "committee": [str(QUICK / "best_model.pt")]}),
               tmp_path / "watched", resume=True, committee=[member])
    with pytest.raises(HQCError, match="needs a committee"):
        MDOptions(max_force_dev=0.5).validate()
    with pytest.raises(HQCError, match="1 committee members named"):
        run_md(start, quick_calc, MDOptions(**opt), tmp_path / "x")
    runner = CliRunner()
    md = runner.invoke(app, ["md", str(QUICK), "--steps", "10", "--log-every", "5", "--committee", last,
                             "--out", str(tmp_path / "cli"), "--no-progress"])
    assert md.exit_code == 0, md.output
    assert "committee of 2" in md.output and (tmp_path / "cli" / "md_log.png").exists()


def test_simulations_of_a_checkpoint_file_write_beside_it(tmp_path):
    """md and mc without --out: RUN_DIR/<name> for a run directory, <stem>_<name> beside a checkpoint file."""
    import shutil

    from hqc_qiskit.cli_sim import default_output

    ckpt = tmp_path / "model.pt"
    shutil.copy(QUICK / "best_model.pt", ckpt)
    assert default_output(QUICK, "md_nvt_2000K") == QUICK / "md_nvt_2000K"
    runner = CliRunner()
    md = runner.invoke(app, ["md", str(ckpt), "--steps", "2", "--no-progress"])
    assert md.exit_code == 0, md.output
    assert (tmp_path / "model_md_nvt_2000K" / "md_log.csv").exists()
    mc = runner.invoke(app, ["mc", str(ckpt), "--steps", "2", "--no-progress"])
    assert mc.exit_code == 0, mc.output
    assert len(list(tmp_path.glob("model_mc_*"))) == 1


class _NoisyFreeAtoms(Calculator):
    """A shot-based calculator stand-in for free atoms: exact forces 0, measured forces white noise of
    ``sigma`` eV/Å per component (fresh at every new structure), energy 0; keeps its noise state like
    HQCShotCalculator, so run_md logs and checkpoints it the same way."""

    implemented_properties = ["energy", "forces"]
    shot_based = True

    def __init__(self, sigma, seed=0):
        super().__init__()
        self.sigma, self.rng = sigma, np.random.default_rng(seed)
        self.noise_state = self.rng.bit_generator.state

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.noise_state = self.rng.bit_generator.state
        n = len(self.atoms)
        self.results = {"energy": 0.0, "exact_energy": 0.0, "exact_forces": np.zeros((n, 3)),
                        "forces": self.rng.normal(0.0, self.sigma, (n, 3)),   # and an unbiased variance estimate:
                        "force_noise_var": float(np.mean(self.rng.normal(0.0, self.sigma, (n, 3)) ** 2))}

    def set_noise_state(self, state):
        self.rng.bit_generator.state = state


@pytest.mark.parametrize("ensemble, thermostat", [("nve", "nose-hoover"), ("nvt", "langevin")])
def test_shot_noise_heating_prediction_matches_ase_integrators(tmp_path, ensemble, thermostat):
    """White force noise on free atoms: in NVE the total energy grows at the predicted rate, under Langevin
    the temperature settles the predicted shift above the target (the formula behind md's summary)."""
    from ase import Atoms

    atoms = Atoms("Si256", positions=np.random.default_rng(0).uniform(0, 30, (256, 3)), cell=[30] * 3, pbc=True)
    sigma = 2.0   # eV/Å: Langevin shift ~ 400 K at friction 0.01/fs, 0.5 fs; NVE ~ 1 eV/atom/ps
    opt = MDOptions(steps=3000, ensemble=ensemble, thermostat=thermostat, temperature=1000.0, log_every=10,
                    traj_every=3000, checkpoint_every=3000, min_distance=0.0, max_temperature_factor=1e9)
    summary = run_md(atoms, _NoisyFreeAtoms(sigma), opt, tmp_path)
    predicted = summary["predicted"]
    assert summary["force_noise_rms_eV_A"] == pytest.approx(sigma, rel=0.02)
    if ensemble == "nve":
        assert summary["drift_exact_total_mev_per_atom_ps"] == pytest.approx(predicted["heating_mev_per_atom_ps"], rel=0.1)
        # the total energy's random walk: increments between log rows (10 steps = 5 fs) less the drift, in units
        # of the predicted walk at each row's temperature (the free atoms heat from 1000 to about 8000 K)
        rows = read_rows(tmp_path / "md_log.csv")
        e = np.array([r["E_tot_eV"] for r in rows]) / len(atoms) * 1000.0
        row_ps = opt.log_every * opt.timestep / 1000.0
        walk = [shot_noise_heating(sigma**2, opt, atoms.get_masses(), r["T_K"])["energy_walk_mev_per_atom_sqrt_ps"]
                * np.sqrt(row_ps) for r in rows[:-1]]
        z = (np.diff(e) - predicted["heating_mev_per_atom_ps"] * row_ps) / walk
        assert np.sqrt(np.mean(z**2)) == pytest.approx(1.0, rel=0.1)
    else:
        shift = predicted["langevin_T_shift_K"]
        assert shift > 200
        assert summary["mean_T_K"] - 1000.0 == pytest.approx(shift, rel=0.2)


def test_langevin_noise_compensation_keeps_the_target_temperature(tmp_path):
    """With compensate_noise the thermostat lowers its own random force by the noise's share: the same free
    atoms and noise that run 400 K hot uncompensated (test above) stay at the target; noise beyond what the
    thermostat can absorb stops the run with the reason."""
    from ase import Atoms

    atoms = Atoms("Si256", positions=np.random.default_rng(0).uniform(0, 30, (256, 3)), cell=[30] * 3, pbc=True)
    opt = MDOptions(steps=3000, thermostat="langevin", temperature=1000.0, log_every=10, traj_every=3000,
                    checkpoint_every=3000, min_distance=0.0, compensate_noise=True)
    summary = run_md(atoms, _NoisyFreeAtoms(2.0), opt, tmp_path / "on")
    assert summary["mean_T_K"] == pytest.approx(1000.0, rel=0.04)
    assert summary["mean_T_thermostat_K"] == pytest.approx(1000.0 - summary["predicted"]["langevin_T_shift_K"], rel=0.01)
    assert "T_thermostat_K" in read_rows(tmp_path / "on" / "md_log.csv")[0]
    cold = run_md(atoms, _NoisyFreeAtoms(2.0), MDOptions(**{**vars(opt), "temperature": 300.0}), tmp_path / "cold")
    assert not cold["stable"] and "more than the thermostat can absorb" in cold["unstable_reason"]
    with pytest.raises(HQCError, match="needs measured forces"):
        run_md(atoms, HQCCalculator(QUICK), MDOptions(steps=2, thermostat="langevin", compensate_noise=True), tmp_path / "x")
    with pytest.raises(HQCError, match="^compensate_noise works through a Langevin"):
        MDOptions(compensate_noise=True).validate()


def test_shot_based_md_resumes_identically_and_logs_its_noise(tmp_path, start):
    """MD on forces measured with 200 shots (aer) killed mid-run and resumed equals an uninterrupted run: the
    checkpoint holds the shot noise's generator; the log has the exact energy and the realized force noise."""
    from hqc_qiskit.calculator import HQCShotCalculator

    model, _ = tiny_hqc_checkpoint(tmp_path)
    opt = MDOptions(steps=12, thermostat="langevin", log_every=2, traj_every=4, checkpoint_every=4, compensate_noise=True)

    def calc():
        return HQCShotCalculator(model=model, backend="aer", shots=200, seed=[0, 1], force_uncertainty=False)

    full = run_md(start, calc(), opt, tmp_path / "full")

    with pytest.raises(_Killed):
        run_md(start, calc(), opt, tmp_path / "cut", progress=_kill_at(7))
    resumed = run_md(start, calc(), opt, tmp_path / "cut", resume=True)
    full_rows, cut_rows = read_rows(tmp_path / "full" / "md_log.csv"), read_rows(tmp_path / "cut" / "md_log.csv")
    assert len(full_rows) == 7
    np.testing.assert_equal(cut_rows, full_rows)   # exactly (Langevin's E_conserved is NaN in both)
    assert resumed["force_noise_rms_eV_A"] == full["force_noise_rms_eV_A"] > 0
    # the estimate from the measurement alone agrees with the realized noise (ideal Aer: shot noise only)
    assert full["force_noise_est_eV_A"] == pytest.approx(full["force_noise_rms_eV_A"], rel=0.25)
    exact = HQCCalculator(model=model)
    frame = read_structures(tmp_path / "full" / "md_traj.extxyz")[-1]
    assert full_rows[-1]["E_pot_exact_eV"] == pytest.approx(exact.get_potential_energy(frame), abs=1e-8)
    assert full_rows[-1]["E_pot_eV"] != pytest.approx(full_rows[-1]["E_pot_exact_eV"], abs=1e-8)   # measured
    with pytest.raises(HQCError, match="npt with shot-based forces"):
        run_md(start, calc(), MDOptions(steps=2, ensemble="npt"), tmp_path / "npt")


def test_cli_md_with_shot_based_forces(tmp_path):
    _, hqc = tiny_hqc_checkpoint(tmp_path)
    runner = CliRunner()
    md = runner.invoke(app, ["md", str(hqc), "--backend", "aer", "--shots", "300", "--steps", "4", "--ensemble", "nve",
                             "--log-every", "2", "--no-progress"])
    assert md.exit_code == 0, md.output
    out = tmp_path / "hqc_md_nve_2000K_aer_300"
    summary = json.loads((out / "md_summary.json").read_text())
    assert summary["steps"] == 4 and summary["force_noise_rms_eV_A"] > 0
    said = " ".join(md.output.split())   # Rich wraps long lines
    assert "shot noise of the forces" in said and "drift of the exact total energy" in said and "random walk" in said
    comp = runner.invoke(app, ["md", str(hqc), "--backend", "aer", "--shots", "300", "--steps", "2", "--thermostat",
                               "langevin", "--compensate-noise", "--out", str(tmp_path / "comp"), "--no-progress"])
    assert comp.exit_code == 0 and "noise compensation" in comp.output, comp.output
    assert json.loads((tmp_path / "comp" / "md_summary.json").read_text())["options"]["compensate_noise"] is True
    ibm = runner.invoke(app, ["md", str(hqc), "--backend", "ibm_brisbane", "--steps", "4", "--out", str(tmp_path / "ibm")])
    assert ibm.exit_code == 2 and "Monte Carlo" in ibm.output and not (tmp_path / "ibm").exists()
    cmlp = runner.invoke(app, ["md", str(QUICK), "--backend", "aer", "--steps", "2", "--out", str(tmp_path / "c")])
    assert cmlp.exit_code == 2 and "quantum readouts" in cmlp.output
