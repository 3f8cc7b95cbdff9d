"""Hardware path: transpiled circuits, reduced noisy simulation, shot statistics, mitigation, runtime backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from hqc_qiskit.errors import ConfigError, HQCError
from hqc_qiskit.quantum.backends import CircuitBatch, RuntimeBackend, RuntimeOptions, make_backend
from hqc_qiskit.quantum.circuits import ansatz_names
from hqc_qiskit.quantum.estimate import allocate_shots, predicted_stderr
from hqc_qiskit.quantum.exact import z_expectations
from hqc_qiskit.quantum.profiles import load_profile, profile_names
from hqc_qiskit.quantum.simulate import z_signs
from hqc_qiskit.quantum.transpile import transpile_readout


def _batch(name="cz", n_qubits=8, n_layers=3, k=6, seed=0):
    rng = np.random.default_rng(seed)
    return CircuitBatch(name, n_qubits, n_layers, [(rng.uniform(-2, 2, (k, n_qubits)), rng.uniform(0, 2 * np.pi, n_layers * n_qubits))])


@pytest.mark.parametrize("profile", profile_names())
def test_transpiled_circuits_match_logical_outputs(profile):
    """Every ansatz compiled with every profile gives the exact engine's <Z_q> (noiseless, reduced register)."""
    rng = np.random.default_rng(1)
    for name in ansatz_names():
        tr = transpile_readout(name, profile)
        x, w = rng.uniform(-2, 2, (2, 8)), rng.uniform(0, 6, 24)
        reference = z_expectations(name, torch.tensor(x), torch.tensor(w).reshape(3, 8)).numpy()
        params = tr.parameter_values(x, w, tr.reduced)
        for k in range(2):
            probs = Statevector(tr.reduced.assign_parameters(params[k])).probabilities(tr.reduced_outputs)
            np.testing.assert_allclose(probs @ z_signs(8), reference[k], atol=1e-9, err_msg=f"{name} on {profile}")


def test_profile_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="no such transpile profile"):
        load_profile("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntarget: custom\nbasis_gates: [rz, sx, cz]\n")
    with pytest.raises(ConfigError, match="coupling_map"):
        load_profile(bad)


@pytest.mark.parametrize("scale", [-0.5, float("nan")])
def test_noise_scale_must_be_a_non_negative_number(scale):
    from hqc_qiskit.quantum.noise import reduced_noise

    with pytest.raises(ConfigError, match="noise scale must be >= 0"):
        reduced_noise("depolarizing", transpile_readout("cz", "ideal", 4, 1), scale=scale)


def test_device_profiles_simulate_idle_relaxation(tmp_path):
    """Device profiles are ALAP-scheduled with delays in idle windows (schedule: auto), so the device noise
    model relaxes waiting qubits; 'schedule: none' leaves them noiseless; ideal profiles are not scheduled."""
    import yaml

    from hqc_qiskit.quantum.backends import SimulatorBackend

    from hqc_qiskit.quantum.profiles import PROFILES_DIR

    base = yaml.safe_load((PROFILES_DIR / "ibm_eagle_compact.yaml").read_text())
    path = tmp_path / "eagle_unscheduled.yaml"
    path.write_text(yaml.safe_dump({**base, "name": "eagle_unscheduled", "schedule": "none"}))
    scheduled, unscheduled = transpile_readout("cx", "ibm_eagle_compact", 3, 1), transpile_readout("cx", str(path), 3, 1)
    assert scheduled.reduced.count_ops().get("delay", 0) > 0
    assert "delay" not in unscheduled.reduced.count_ops() and "delay" not in transpile_readout("cx", "ideal").isa.count_ops()
    batch = _batch("cx", n_qubits=3, n_layers=1, k=3)
    with_idle = SimulatorBackend("fake_brisbane", "ibm_eagle_compact").run(batch, np.inf).mean
    without_idle = SimulatorBackend("fake_brisbane", str(path)).run(batch, np.inf).mean
    exact = make_backend("exact").run(batch).mean
    assert np.abs(with_idle - without_idle).max() > 1e-3
    assert np.abs(with_idle - exact).mean() > np.abs(without_idle - exact).mean()   # waiting adds error
    # the transpile table's success estimate counts the idle windows too
    assert unscheduled.idle_fidelity() == 1.0 and scheduled.idle_fidelity() < 0.99
    assert scheduled.success_probability() < unscheduled.success_probability()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntarget: ideal\nbasis_gates: [rz, sx, cz]\nschedule: alap\n")
    with pytest.raises(ConfigError, match="gate durations"):
        load_profile(bad)


def test_explicit_idle_relaxation_equals_aer_noise_pass():
    """The simulator writes each delay's relaxation into the circuit as a Kraus instruction (leading ones on |0>
    dropped); Aer's own form, its RelaxationNoisePass inside the noise model, gives the same measured
    distributions, for the plain and a ZNE-folded circuit."""
    import copy

    from qiskit_aer import AerSimulator

    from hqc_qiskit.quantum.backends import SimulatorBackend
    from hqc_qiskit.quantum.mitigation import fold_global

    batch = _batch("cx", n_qubits=3, n_layers=1, k=3)
    sim = SimulatorBackend("fake_brisbane", "ibm_eagle_compact").simulator(batch)
    assert sim.tr.reduced.count_ops()["delay"] > 0 and "delay" not in sim.circuit.count_ops()
    assert sim.circuit.count_ops().get("kraus", 0) > 0
    params = sim.tr.parameter_values(batch.x, batch.w, sim.tr.reduced)
    reference = copy.copy(sim)
    reference.engine = "aer"
    reference.simulator = AerSimulator(method="density_matrix", noise_model=sim.noise.aer_model())
    for circuit in (sim.tr.reduced, fold_global(sim.tr.reduced, 3)):
        ours = sim.with_circuit(circuit)
        ours.engine = "aer"
        theirs = circuit.copy()
        theirs.save_probabilities(qubits=sim.tr.reduced_outputs, label="probs")
        np.testing.assert_allclose(ours.distributions(params), reference.distributions(params, theirs), atol=1e-12)


def test_relaxation_fidelity_is_the_average_gate_fidelity_of_aers_channel():
    from qiskit.quantum_info import Kraus, average_gate_fidelity
    from qiskit_aer.noise import thermal_relaxation_error

    from hqc_qiskit.quantum.transpile import relaxation_fidelity

    for t1, t2, t in [(200e-6, 150e-6, 30e-6), (100e-6, 200e-6, 5e-6), (50e-6, 20e-6, 80e-6)]:
        channel = Kraus(thermal_relaxation_error(t1, t2, t).to_quantumchannel())
        assert relaxation_fidelity(t, t1, t2) == pytest.approx(average_gate_fidelity(channel), abs=1e-12)


@pytest.mark.parametrize("profile", ["ideal", "ibm_heron_compact"])
def test_noiseless_distributions_by_exact_engine_equal_aer_statevector(profile):
    """The default noiseless engine (exact engine on the logical circuits) gives the whole output distribution
    that Aer's statevector gives on the transpiled circuits, for every ansatz, also folded for ZNE."""
    for name in ansatz_names():
        batch = _batch(name, k=4, seed=5)
        ours, aer = make_backend("aer", profile), make_backend("aer", profile, engine="aer")
        assert aer.engine == "aer"
        for fold in (1, 3):
            np.testing.assert_allclose(ours.distributions(batch, fold), aer.distributions(batch, fold), atol=1e-9,
                                       err_msg=f"{name} on {profile}, fold {fold}")


def test_infinite_shots_without_noise_equal_exact():
    batch = _batch()
    exact = make_backend("exact").run(batch)
    aer = make_backend("aer", engine="aer").run(batch, np.inf)   # Aer's statevector (the default engine is exact's)
    np.testing.assert_allclose(aer.mean, exact.mean, atol=1e-9)
    np.testing.assert_allclose(aer.cov, exact.cov, atol=1e-9)
    zero = make_backend("aer-noise:thermal", scale=0.0).run(batch, np.inf)
    np.testing.assert_allclose(zero.mean, exact.mean, atol=1e-9)


def test_predicted_stderr_matches_spread_over_repeats():
    """The energy standard error propagated from per-shot covariances agrees with the spread of repeats."""
    batch = _batch("cx", k=10)
    coeffs = np.random.default_rng(3).normal(size=(10, 8))
    backend = make_backend("aer")
    rng = np.random.default_rng(4)
    energies, predicted = [], []
    for _ in range(400):
        s = backend.run(batch, 500, rng)
        energies.append(np.sum(coeffs * s.mean))
        predicted.append(np.sqrt(np.einsum("kq,kqr,kr->", coeffs, s.cov / 500, coeffs)))
    assert np.std(energies, ddof=1) == pytest.approx(np.mean(predicted), rel=0.10)


def test_reduced_simulation_equals_full_device():
    """Reduced circuit + reduced noise model vs Aer's full FakeBrisbane model on the whole chip."""
    from qiskit_aer import AerSimulator

    from hqc_qiskit.quantum.devices import fake_backend

    batch = _batch("cz", n_qubits=3, n_layers=1, k=4)
    reduced = make_backend("aer-noise:fake_brisbane@ibm_eagle").run(batch, np.inf)
    ideal = make_backend("exact").run(batch)
    runtime = RuntimeBackend("fake_brisbane", profile="ibm_eagle")
    tr, circuit = runtime.measured_circuit(batch)
    params = tr.parameter_values(batch.x, batch.w, circuit)
    shots = 20000
    result = AerSimulator.from_backend(fake_backend("fake_brisbane")).run(
        [circuit.assign_parameters(p) for p in params], shots=shots, seed_simulator=7).result()
    for k in range(len(batch)):
        counts = np.zeros(8)
        for key, c in result.get_counts(k).items():
            counts[int(key, 2)] = c
        z_full = counts / shots @ z_signs(3)
        sigma = np.sqrt(np.clip(1 - reduced.mean[k] ** 2, 1e-6, None) / shots)
        assert np.all(np.abs(z_full - reduced.mean[k]) < 4.5 * sigma), (k, z_full, reduced.mean[k])
    assert np.abs(reduced.mean - ideal.mean).max() > 0.01   # the noise is really there


def test_zne_reduces_depolarizing_error():
    batch = _batch("cz", k=8)
    exact = make_backend("exact").run(batch).mean
    raw = make_backend("aer-noise:depolarizing").run(batch, np.inf).mean
    zne = make_backend("aer-noise:depolarizing", mitigation="zne").run(batch, np.inf).mean
    assert np.abs(zne - exact).mean() < 0.5 * np.abs(raw - exact).mean()


def test_mitigations_share_one_simulated_device(monkeypatch):
    """with_mitigation siblings give what separate backends give, and simulate each fold of a batch once."""
    from hqc_qiskit.quantum.backends import SimulatorBackend
    from hqc_qiskit.quantum.mitigation import MitigationOptions

    device = SimulatorBackend("depolarizing", keep_distributions=True)
    assert make_backend("aer-noise:depolarizing")._distributions is None   # others keep nothing
    simulated = []
    original = SimulatorBackend._simulate

    def counting(self, batch, factor):
        if self._distributions is device._distributions:
            simulated.append((batch.fingerprint(), factor))
        return original(self, batch, factor)

    monkeypatch.setattr(SimulatorBackend, "_simulate", counting)
    batches = [_batch("cz", k=3, seed=0), _batch("cz", k=3, seed=1)]
    for batch in batches:
        for mitigation in ("none", "rem", "zne", "zne+rem"):
            shared = device.with_mitigation(MitigationOptions.parse(mitigation)).run(batch, np.inf, np.random.default_rng(0))
            fresh = make_backend("aer-noise:depolarizing", mitigation=mitigation).run(batch, np.inf, np.random.default_rng(0))
            np.testing.assert_allclose(shared.mean, fresh.mean, rtol=0, atol=1e-12)
            np.testing.assert_allclose(shared.cov, fresh.cov, rtol=0, atol=1e-12)
    assert sorted(simulated) == sorted({(b.fingerprint(), f) for b in batches for f in (1, 3, 5)})
    assert len(simulated) == 6


def test_rem_removes_readout_error(tmp_path):
    model = tmp_path / "readout_only.yaml"
    model.write_text("name: readout_only\nkind: parametric\nreadout_error: 0.05\n")
    batch = _batch("basic", k=6)
    exact = make_backend("exact").run(batch).mean
    raw = make_backend(f"aer-noise:{model}").run(batch, np.inf).mean
    rem = make_backend(f"aer-noise:{model}", mitigation="rem").run(batch, np.inf, np.random.default_rng(0)).mean
    assert np.abs(rem - exact).max() < 0.2 * np.abs(raw - exact).max()


def test_shot_allocation():
    v = np.array([1.0, 4.0, 9.0, 0.0])
    for allocation in ("uniform", "optimal"):
        s = allocate_shots(v, 10000, allocation)
        assert s.sum() == 10000 and s.min() >= 16
    uniform, optimal = allocate_shots(v, 10000, "uniform"), allocate_shots(v, 10000, "optimal")
    assert predicted_stderr(v, optimal) < predicted_stderr(v, uniform)
    few = allocate_shots(v, 20, "optimal")   # 5 per circuit on average: the floor is the average
    assert few.sum() == 20 and few.min() == 5
    with pytest.raises(ConfigError, match="fewer than 2 per circuit"):
        allocate_shots(v, 7, "uniform")


def test_runtime_local_mode_matches_reduced_simulation(tmp_path):
    """The qiskit-ibm-runtime path (client-side Sampler, batch mode) on a fake device in local mode; journal resumes."""
    batch = _batch("cz", n_qubits=2, n_layers=1, k=3)
    backend = RuntimeBackend("fake_brisbane", profile="ibm_eagle", options=RuntimeOptions(journal=str(tmp_path / "journal")))
    samples = backend.run(batch, 4000)
    reduced = make_backend("aer-noise:fake_brisbane@ibm_eagle").run(batch, np.inf)
    assert np.all(np.abs(samples.mean - reduced.mean) < 5 * np.sqrt(1 / 4000))
    assert len(list((tmp_path / "journal").glob("*.npy"))) == 1

    def no_network(*_a, **_k):
        raise AssertionError("a journaled job was submitted again")

    backend._submit_with_retry = no_network
    again = backend.run(batch, 4000)
    np.testing.assert_array_equal(again.mean, samples.mean)


def _manila_files(tmp_path):
    """A transpile profile and a device noise model for the 5-qubit FakeManila (runtime Estimator local mode)."""
    profile = tmp_path / "manila.yaml"
    profile.write_text("name: manila\ntarget: fake_manila\noptimization_level: 1\nseed: 0\n")
    noise = tmp_path / "manila_noise.yaml"
    noise.write_text(f"name: manila_noise\nkind: device\ndevice: fake_manila\nprofile: {profile}\n")
    return profile, noise


def test_runtime_estimator_local_mode(tmp_path):
    """The runtime Estimator path (resilience level 0) on a fake device equals the device noise simulation
    within its own standard errors; standard errors become the diagonal covariance; the journal resumes."""
    profile, noise = _manila_files(tmp_path)
    batch = _batch("cz", n_qubits=2, n_layers=1, k=3)
    options = RuntimeOptions(resilience_level=0, seed=3, journal=str(tmp_path / "journal"))
    backend = RuntimeBackend("fake_manila", profile=str(profile), options=options)
    samples = backend.run(batch, 4000)
    reference = make_backend(f"aer-noise:{noise}").run(batch, np.inf)
    std = np.sqrt(np.diagonal(samples.cov, axis1=1, axis2=2) / 4000)
    assert samples.info["primitive"] == "estimator" and np.all(std > 0) and np.all(std < 0.05)
    assert np.all(np.abs(samples.mean - reference.mean) < 5 * std + 1e-3)
    assert np.count_nonzero(samples.cov[:, 0, 1]) == 0
    backend._submit_with_retry = lambda *_a, **_k: pytest.fail("a journaled job was submitted again")
    np.testing.assert_array_equal(backend.run(batch, 4000).mean, samples.mean)


def test_runtime_mitigation_options_reach_the_estimator():
    """--mitigation / --resilience-level on runtime backends build the runtime Estimator's options (no network)."""
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    sampler = make_backend("ibm_brisbane")
    assert sampler.options.primitive == "sampler"
    backend = make_backend("ibm_brisbane", mitigation="zne+rem", runtime=RuntimeOptions(twirling=True))
    assert backend.options.primitive == "estimator" and backend.options.zne_factors == (1, 3, 5)
    est = backend._primitive(FakeManilaV2())
    assert est.options.resilience_level == 0 and est.options.resilience.measure_mitigation
    assert est.options.resilience.zne_mitigation and list(est.options.resilience.zne.noise_factors) == [1, 3, 5]
    assert est.options.resilience.zne.extrapolator == "polynomial_degree_2" and est.options.twirling.enable_gates
    linear = make_backend("fake_manila", profile="ideal", mitigation="zne-linear:1,3")._primitive(FakeManilaV2())
    assert linear.options.resilience.zne.extrapolator == "linear"
    level2 = make_backend("ibm_brisbane", runtime=RuntimeOptions(resilience_level=2))
    assert level2._primitive(FakeManilaV2()).options.resilience_level == 2
    assert level2.cost(_batch(k=2), 1000)["noise_factors"] == [1, 3, 5]
    with pytest.raises(ConfigError, match="resilience level"):
        RuntimeOptions(resilience_level=3)
    with pytest.raises(ConfigError, match="fake_guadalupe"):
        make_backend("fake_brisbane", runtime=RuntimeOptions(resilience_level=1)).run(_batch(k=1), 100)


def test_ibm_dry_run_cap_and_missing_account(monkeypatch, tmp_path):
    """Hardware path without network: cost estimate, hard cap before submission, clear account error."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(var, raising=False)
    batch = _batch("cz", k=4)
    backend = make_backend("ibm_brisbane", runtime=RuntimeOptions(max_qpu_seconds=1.0))
    cost = backend.cost(batch, np.full(4, 50000))
    assert cost["circuits"] == 4 and cost["shots"] == 200000 and cost["qpu_seconds"] > 50
    with pytest.raises(HQCError, match="exceeds --max-qpu-seconds"):
        backend.run(batch, 50000)
    uncapped = make_backend("ibm_brisbane")
    with pytest.raises(HQCError, match="save_account"):
        uncapped.run(batch, 100)


def test_unknown_backend_and_noise_model():
    with pytest.raises(ConfigError, match="unknown backend"):
        make_backend("quantum_magic")
    with pytest.raises(ConfigError, match="no such noise model"):
        make_backend("aer-noise:nope").run(_batch(k=1), np.inf)
    with pytest.raises(ConfigError, match="snapshot of fake_brisbane"):
        make_backend("aer-noise:fake_brisbane@ideal").run(_batch(k=1), np.inf)
    for name in ("fake_nowhere", "ibm_nowhere"):   # no snapshot to compile for, named before any account lookup
        with pytest.raises(ConfigError, match=f"{name}: no device snapshot 'fake_nowhere'.*fake_brisbane.*--profile"):
            make_backend(name)


def test_fake_device_names_are_the_snapshot_classes():
    from qiskit_ibm_runtime import fake_provider

    from hqc_qiskit.quantum.devices import fake_device_names

    names = fake_device_names()
    assert "fake_brisbane" in names and "fake_torino" in names
    classes = {attr[4:].removesuffix("V2").lower() for attr in dir(fake_provider) if attr.startswith("Fake")}
    assert all(name.removeprefix("fake_") in classes for name in names)
    assert not any("provider" in name for name in names)


def test_energy_estimate_of_a_model_and_cli(tmp_path, monkeypatch):
    """Shot-based energy of a tiny HQC model: exact backend = model; aer within its standard error; CLI."""
    import json

    from typer.testing import CliRunner

    from hqc_qiskit.cli import app
    from hqc_qiskit.data.dataset import read_structures
    from hqc_qiskit.quantum.estimate import estimate_energy
    from hqc_qiskit.quantum.simulate import ReducedSimulator

    from tests.conftest import DATA, tiny_hqc_checkpoint

    model, path = tiny_hqc_checkpoint(tmp_path)
    structure = DATA / "si_liquid_3000K.test.extxyz.gz"
    atoms = read_structures(structure)[0]
    exact = estimate_energy(model, atoms, make_backend("exact"))
    assert exact.energy == pytest.approx(exact.exact_energy, abs=1e-8) and exact.stderr == 0
    shot = estimate_energy(model, atoms, make_backend("aer"), 2000, "optimal", np.random.default_rng(0))
    assert shot.shots == 2000 * shot.circuits and abs(shot.energy - shot.exact_energy) < 5 * shot.stderr
    runner = CliRunner()
    out = tmp_path / "e.json"
    result = runner.invoke(app, ["energy", str(path), "--structure", str(structure), "--backend", "aer", "--shots", "500",
                                 "--seed", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["circuits"] == 2 * 64
    noisy, aer_calls = {}, []
    aer = ReducedSimulator._aer
    monkeypatch.setattr(ReducedSimulator, "_aer", lambda self, *a: aer_calls.append(1) or aer(self, *a))
    for engine in ("batched", "aer"):   # --noisy-engine: the same sampled energy from either noisy simulator
        result = runner.invoke(app, ["energy", str(path), "--structure", str(structure), "--backend", "aer-noise:depolarizing",
                                     "--shots", "500", "--seed", "1", "--json", str(out), "--noisy-engine", engine])
        assert result.exit_code == 0, result.output
        noisy[engine] = json.loads(out.read_text())
        assert bool(aer_calls) == (engine == "aer")   # the option reached the simulator
    assert abs(noisy["batched"]["energy"] - noisy["aer"]["energy"]) < 1e-3 * noisy["aer"]["stderr"]
    result = runner.invoke(app, ["energy", str(path), "--structure", str(structure), "--backend", "aer-noise:depolarizing",
                                 "--noisy-engine", "statevector"])
    assert result.exit_code == 2 and "unknown simulation engine 'statevector'" in result.output
    dry = ["energy", str(path), "--structure", str(structure), "--backend", "ibm_brisbane", "--dry-run", "--dd", "--twirling",
           "--resilience-level", "1", "--allocation", "optimal"]
    result = runner.invoke(app, dry)
    assert result.exit_code == 0 and "qpu_seconds" in result.output and "nothing was submitted" in result.output
    assert "max-qpu-seconds" not in result.output
    for cap, verdict in (("1", "a real run would refuse it"), ("1e9", "within the cap")):
        result = runner.invoke(app, dry + ["--max-qpu-seconds", cap])
        assert result.exit_code == 0 and verdict in " ".join(result.output.split()), result.output   # unwrapped
    result = runner.invoke(app, ["transpile", "--profile", "ideal", "--ansatz", "cz", "--json", str(tmp_path / "t.json")])
    assert result.exit_code == 0 and json.loads((tmp_path / "t.json").read_text())[0]["swaps"] == 0


def test_noise_study_saves_every_point_and_resumes(tmp_path):
    """Each finished point is in noise_study.json at once; --resume computes only the missing points."""
    import json

    from typer.testing import CliRunner

    from hqc_qiskit.cli import app

    from tests.conftest import DATA, tiny_hqc_checkpoint

    _, path = tiny_hqc_checkpoint(tmp_path)
    out = tmp_path / "ns"
    base = ["noise-study", str(path), "--structures", str(DATA / "si_liquid_3000K.test.extxyz.gz"), "--n-structures", "1",
            "--scales", "1", "--out", str(out)]
    runner = CliRunner()
    first = runner.invoke(app, base + ["--mitigations", "none"])
    assert first.exit_code == 0, first.output
    rows = json.loads((out / "noise_study.json").read_text())
    assert [r["mitigation"] for r in rows] == ["none"] and rows[0]["rmse_mev_per_atom"] > 0
    second = runner.invoke(app, base + ["--mitigations", "none,rem", "--resume"])
    assert second.exit_code == 0, second.output
    assert "rem: RMSE" in second.output and "none: RMSE" not in second.output     # only the new point ran
    rows2 = json.loads((out / "noise_study.json").read_text())
    assert [r["mitigation"] for r in rows2] == ["none", "rem"] and rows2[0] == rows[0]
    refused = runner.invoke(app, base + ["--mitigations", "none"])                 # neither flag: nothing is lost
    assert refused.exit_code == 2 and "--overwrite" in refused.output and "--resume" in refused.output
    assert json.loads((out / "noise_study.json").read_text()) == rows2
    third = runner.invoke(app, base + ["--mitigations", "none", "--overwrite"])    # recomputed from scratch
    assert third.exit_code == 0 and "none: RMSE" in third.output
    assert [r["mitigation"] for r in json.loads((out / "noise_study.json").read_text())] == ["none"]
    stale = [dict(r, idle_delays=True) for r in json.loads((out / "noise_study.json").read_text())]
    (out / "noise_study.json").write_text(json.dumps(stale))                        # other idle settings: stale
    fourth = runner.invoke(app, base + ["--mitigations", "none", "--resume"])
    assert fourth.exit_code == 0 and "none: RMSE" in fourth.output
    assert [r["idle_delays"] for r in json.loads((out / "noise_study.json").read_text())] == [False]


def test_shots_study_refuses_to_replace_results(tmp_path):
    """A second shots-study into the same --out stops before computing anything and leaves the results alone."""
    from typer.testing import CliRunner

    from hqc_qiskit.cli import app

    from tests.conftest import squashed, tiny_hqc_checkpoint

    _, path = tiny_hqc_checkpoint(tmp_path)
    out = tmp_path / "ss"
    out.mkdir()
    (out / "shots_study.json").write_text('{"rows": []}')
    result = CliRunner().invoke(app, ["shots-study", str(path), "--out", str(out)])
    said = squashed(result.output)
    assert result.exit_code == 2 and "shots_study.jsonexists:pass--overwrite" in said
    assert (out / "shots_study.json").read_text() == '{"rows": []}'


def test_zne_shot_split():
    from hqc_qiskit.quantum.mitigation import extrapolation_weights, zne_shot_split

    gamma = extrapolation_weights((1, 3, 5), "richardson")
    shots = np.array([1000.0, 37.0, 4.0])
    uniform = zne_shot_split(shots, gamma, "uniform")
    np.testing.assert_array_equal(uniform, np.tile(shots, (3, 1)))
    optimal = zne_shot_split(shots, gamma, "optimal")
    np.testing.assert_array_equal(optimal.sum(axis=0), 3 * shots)          # the same total per circuit
    assert optimal.min() >= 1 and np.all(optimal == np.round(optimal))
    np.testing.assert_allclose(optimal[:, 0] / 3000, np.abs(gamma) / np.abs(gamma).sum(), atol=1e-3)
    # equal per-shot variances: the Neyman split's variance is (sum |gamma|)^2 / (F sum gamma^2) of the uniform one
    var = lambda n: np.sum(gamma**2 / n[:, 0])   # noqa: E731
    assert var(optimal) / var(uniform) == pytest.approx(np.abs(gamma).sum() ** 2 / (3 * np.sum(gamma**2)), rel=1e-3)
    assert np.all(np.isinf(zne_shot_split(np.full(2, np.inf), gamma, "optimal")))


def test_optimal_allocation_splits_zne_shots_and_predicts_their_spread():
    """With ZNE, 'optimal' splits each circuit's shots over its folds (same total): lower predicted error
    than the uniform split, and the predicted standard error still matches the spread of repeats."""
    from hqc_qiskit.quantum.backends import SimulatorBackend
    from hqc_qiskit.quantum.mitigation import MitigationOptions

    batch = _batch("cz", k=6)
    coeffs = np.random.default_rng(3).normal(size=(6, 8))
    device = SimulatorBackend("depolarizing", keep_distributions=True).with_mitigation(MitigationOptions.parse("zne"))
    assert device.for_allocation("uniform") is device
    split = device.for_allocation("optimal")
    assert split.mitigation.zne_shots == "optimal" and device.mitigation.zne_shots == "uniform"
    rng = np.random.default_rng(4)
    spread, predicted = {}, {}
    for name, backend in (("uniform", device), ("optimal", split)):
        energies, errors = [], []
        for _ in range(400):
            s = backend.run(batch, 500, rng)
            assert s.info["executed_shots"] == 3 * 500 * len(batch) == backend.cost(batch, 500)["shots"]
            energies.append(np.sum(coeffs * s.mean))
            errors.append(np.sqrt(np.einsum("kq,kqr,kr->", coeffs, s.cov / 500, coeffs)))
        spread[name], predicted[name] = np.std(energies, ddof=1), np.mean(errors)
        assert spread[name] == pytest.approx(predicted[name], rel=0.10), name
    assert predicted["optimal"] ** 2 < 0.85 * predicted["uniform"] ** 2


def test_an_ibm_token_never_reaches_outputs(monkeypatch, tmp_path):
    """With a token in the environment, nothing hqc-qiskit prints or writes contains it (it is read by
    qiskit-ibm-runtime only, when a real job connects)."""
    from typer.testing import CliRunner

    from hqc_qiskit.cli import app

    from tests.conftest import DATA, tiny_hqc_checkpoint

    sentinel = "SENTINEL-TOKEN-4f9a2c"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QISKIT_IBM_TOKEN", sentinel)
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", f"crn:{sentinel}")
    _, path = tiny_hqc_checkpoint(tmp_path)
    structure = str(DATA / "si_liquid_3000K.test.extxyz.gz")
    runs = [["energy", str(path), "--structure", structure, "--backend", "ibm_brisbane", "--dry-run"],
            ["energy", str(path), "--structure", structure, "--backend", "aer-noise:fake_brisbane", "--shots", "100",
             "--json", str(tmp_path / "e.json")],
            ["mc", str(path), "--structure", structure, "--backend", "ibm_brisbane", "--dry-run", "--out", str(tmp_path / "mc")],
            ["mc", str(path), "--structure", structure, "--backend", "aer", "--shots", "100", "--steps", "2",
             "--out", str(tmp_path / "mc_aer")]]
    for args in runs:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert sentinel not in result.output
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "home" not in p.parts]
    assert len(written) > 5
    assert not [p for p in written if sentinel.encode() in p.read_bytes()]


def test_shot_calculator(tmp_path):
    """HQCShotCalculator: exact backend = HQCCalculator's energy; aer within its error, error ~ 1/sqrt(shots),
    seeded sequences repeat, a new estimate only when the atoms move, forces keep the measured energy; clear
    errors."""
    from ase.calculators.calculator import PropertyNotImplementedError

    from hqc_qiskit.calculator import HQCCalculator, HQCShotCalculator
    from hqc_qiskit.data.dataset import read_structures
    from hqc_qiskit.errors import ConfigError
    from hqc_qiskit.model.potential import build_model

    from tests.conftest import DATA, TINY_MODEL, tiny_hqc_checkpoint

    model, path = tiny_hqc_checkpoint(tmp_path)
    atoms = read_structures(DATA / "si_liquid_3000K.test.extxyz.gz")[0]
    exact = HQCCalculator(path).get_potential_energy(atoms)
    calc = HQCShotCalculator(path, backend="exact")
    assert calc.get_potential_energy(atoms) == pytest.approx(exact, abs=1e-8)
    assert calc.results["energy_uncertainty"] == 0 and calc.results["exact_energy"] == pytest.approx(exact, abs=1e-8)

    def energies(shots, seed, n=3):
        calc = HQCShotCalculator(path, backend="aer", shots=shots, seed=seed)
        out = []
        for i in range(n):
            moved = atoms.copy()
            moved.positions[0, 0] += 1e-3 * i
            calc.calculate(moved)
            out.append((calc.results["energy"], calc.results["energy_uncertainty"], calc.results["exact_energy"]))
        return np.array(out)

    few, again, many = energies(400, 3), energies(400, 3), energies(6400, 3)
    assert np.array_equal(few, again)                                     # same seed, same estimates
    assert np.all(np.abs(few[:, 0] - few[:, 2]) < 5 * few[:, 1])
    assert len(set(few[:, 0] - few[:, 2])) == 3                             # independent draws per structure
    assert np.mean(few[:, 1] / many[:, 1]) == pytest.approx(4.0, rel=0.1)  # 16x the shots: a quarter the error
    calc = HQCShotCalculator(model=model, backend="aer", shots=200, seed=0)
    atoms.calc = calc
    first = atoms.get_potential_energy()
    assert atoms.get_potential_energy() == first                            # ASE caches until the atoms change
    assert calc.last_estimate.circuits == 2 * 64 and calc.last_estimate.shots == 200 * 128
    forces = atoms.get_forces()                                             # energy + shifted circuits, once
    assert atoms.get_potential_energy() == first                            # the measured energy is kept
    assert forces.shape == (64, 3) and calc.results["forces_uncertainty"].shape == (64, 3)
    assert calc.last_estimate.circuits == 128 * (1 + 2 * 8)
    molecule = atoms[:3]
    molecule.pbc, molecule.calc = False, calc
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        molecule.get_stress()
    with pytest.raises(ConfigError, match="quantum readouts"):
        HQCShotCalculator(model=build_model(dict(TINY_MODEL)))
    for bad, match in ((dict(shots=0), "shots must be a positive integer"), (dict(shots=1.5), "shots must"),
                       (dict(allocation="best"), "allocation must be one of"), (dict(backend="ibm"), "unknown backend")):
        with pytest.raises(ConfigError, match=match):
            HQCShotCalculator(model=model, **bad)


def test_local_mode_hint_names_the_compact_profile(capsys):
    """A fake_ device on its whole-chip profile (routing adds qubits: slow in local mode) gets the compact profile
    suggested; on the compact profile an energy gets no hint, a force batch the reduced simulation."""
    from hqc_qiskit.cli_quantum import _suggest_reduced_simulation

    _suggest_reduced_simulation("fake_brisbane", 192, "ibm_eagle", with_forces=False)
    assert "--profile ibm_eagle_compact" in " ".join(capsys.readouterr().out.split())
    _suggest_reduced_simulation("fake_brisbane", 192, "ibm_eagle_compact", with_forces=False)
    assert capsys.readouterr().out == ""
    _suggest_reduced_simulation("fake_brisbane", 3264, "ibm_eagle_compact", with_forces=True)
    out = " ".join(capsys.readouterr().out.split())
    assert "aer-noise:fake_brisbane" in out and "--profile" not in out
