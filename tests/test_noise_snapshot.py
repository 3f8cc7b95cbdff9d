"""Noise snapshots of a device's calibration (quantum/snapshots.py, `hqc-qiskit noise-snapshot`).

The fake backend stands in for the live device: its snapshot must reproduce the shipped noise model of the
same chip exactly, and a changed calibration must change the simulated noise."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from conftest import squashed
from typer.testing import CliRunner

from hqc_qiskit.cli import app
from hqc_qiskit.errors import ConfigError
from hqc_qiskit.quantum.backends import CircuitBatch, make_backend
from hqc_qiskit.quantum.noise import load_noise_spec


def _batch(seed: int = 0) -> CircuitBatch:
    rng = np.random.default_rng(seed)
    return CircuitBatch("cz", 3, 2, [(rng.uniform(-3, 3, size=(6, 3)), rng.uniform(0, 2 * np.pi, size=6))])


def _calibration_variant(snapshot, folder, name: str, edit) -> str:
    """``snapshot``'s stored calibration, changed by ``edit(data)``, written to ``folder/<name>.calibration.json.gz``;
    returns that file's name."""
    with gzip.open(snapshot.parent / "now.calibration.json.gz", "rt") as fh:
        data = json.load(fh)
    edit(data)
    (folder / f"{name}.calibration.json.gz").write_bytes(gzip.compress(json.dumps(data).encode()))
    return f"{name}.calibration.json.gz"


def _noise_yaml(snapshot, folder, name: str, calibration: str):
    """``snapshot``'s noise model as ``folder/<name>.yaml`` with another calibration file; returns its path."""
    (folder / f"{name}.yaml").write_text(json.dumps({**load_noise_spec(snapshot).model_dump(), "name": name,
                                                     "calibration": calibration}))
    return folder / f"{name}.yaml"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noise")
    result = CliRunner().invoke(app, ["noise-snapshot", "fake_brisbane", "--folder", str(folder), "--name", "now"])
    assert result.exit_code == 0, result.output
    assert squashed(f"aer-noise:{folder / 'now.yaml'}") in squashed(result.output)   # outside noise_models/: by path
    return folder / "now.yaml"


def test_snapshot_of_the_fake_device_reproduces_its_noise_model(snapshot):
    spec = load_noise_spec(snapshot)
    assert spec.device == "fake_brisbane" and spec.profile == "ibm_eagle_compact"
    assert (snapshot.parent / "now.calibration.json.gz").exists()
    batch = _batch()
    shipped = make_backend("aer-noise:fake_brisbane@ibm_eagle_compact").distributions(batch)
    stored = make_backend(f"aer-noise:{snapshot}").distributions(batch)
    assert np.array_equal(shipped, stored)
    assert np.max(np.abs(shipped - make_backend("aer").distributions(batch))) > 1e-3     # noise is there


def test_a_changed_calibration_changes_the_noise(snapshot, tmp_path):
    """T1 and readout error of every qubit changed in the stored file: other distributions; the file is found
    relative to its YAML wherever the YAML is."""
    def edit(data):
        for qubit in data["qubits"]:
            for entry in qubit:
                if entry["name"] in ("T1", "readout_error"):
                    entry["value"] *= 0.5 if entry["name"] == "T1" else 2.0

    changed = _noise_yaml(snapshot, tmp_path, "changed", _calibration_variant(snapshot, tmp_path, "changed", edit))
    batch = _batch(1)
    before = make_backend(f"aer-noise:{snapshot}").distributions(batch)
    after = make_backend(f"aer-noise:{changed}").distributions(batch)
    assert np.max(np.abs(before - after)) > 1e-3


def test_snapshot_refuses_to_overwrite_and_names_what_is_wrong(snapshot, tmp_path):
    again = CliRunner().invoke(app, ["noise-snapshot", "fake_brisbane", "--folder", str(snapshot.parent), "--name", "now"])
    assert again.exit_code != 0 and "--overwrite" in squashed(again.output) and "now.yaml" in squashed(again.output)
    assert CliRunner().invoke(app, ["noise-snapshot", "fake_brisbane", "--folder", str(snapshot.parent), "--name", "now",
                                    "--overwrite"]).exit_code == 0
    # a calibration file that is not one, or is missing, is named
    bad = _noise_yaml(snapshot, tmp_path, "bad", "bad.calibration.json.gz")
    with pytest.raises(ConfigError, match="bad.calibration.json.gz"):
        load_noise_spec(bad)
    (tmp_path / "bad.calibration.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="bad.calibration.json.gz"):
        make_backend(f"aer-noise:{bad}").distributions(_batch())
    parametric = {"name": "p", "kind": "parametric", "calibration": "x.json.gz"}
    (tmp_path / "p.yaml").write_text(json.dumps(parametric))
    with pytest.raises(ConfigError, match="calibration"):
        load_noise_spec(tmp_path / "p.yaml")
    # a chip without a fake backend (topology) or without a transpile profile
    no_chip = CliRunner().invoke(app, ["noise-snapshot", "fake_nowhere", "--folder", str(tmp_path)])
    assert no_chip.exit_code != 0 and "fake_nowhere" in squashed(no_chip.output)


def test_snapshot_of_hardware_without_an_account_says_how_to_save_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))               # no saved account file
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["noise-snapshot", "ibm_brisbane", "--folder", str(tmp_path)])
    assert result.exit_code != 0 and "save_account" in squashed(result.output)
    assert not list(tmp_path.glob("*.yaml"))


def test_a_qubit_reported_faulty_in_the_profiles_region_is_refused(snapshot, tmp_path):
    """qiskit-ibm-runtime drops a faulty qubit's operations from the target; the noise model must not silently
    simulate that qubit without errors."""
    from hqc_qiskit.quantum.transpile import transpile_readout

    region = transpile_readout("cz", "ibm_eagle_compact", 3, 2).active_qubits

    def edit(data):
        first = data["qubits"][region[0]]
        first.append({**first[0], "name": "operational", "unit": "", "value": 0})

    faulty = _noise_yaml(snapshot, tmp_path, "faulty", _calibration_variant(snapshot, tmp_path, "faulty", edit))
    with pytest.raises(ConfigError, match=f"qubits \\[{region[0]}"):
        make_backend(f"aer-noise:{faulty}").distributions(_batch())


def _gates(circuit) -> list:
    """Operations, parameters (as text: each transpile has its own Parameter objects) and physical qubits."""
    return [(i.operation.name, [str(p) for p in i.operation.params], [circuit.find_bit(q).index for q in i.qubits])
            for i in circuit.data]


@pytest.fixture
def project_dirs(tmp_path, monkeypatch):
    """The project's noise_models/ and transpile_profiles/ as copies in tmp_path (tests write no repository files)."""
    import shutil

    from hqc_qiskit.quantum import noise, profiles

    dirs = {}
    for module, attr in ((noise, "NOISE_DIR"), (profiles, "PROFILES_DIR")):
        copy = tmp_path / attr.lower()
        shutil.copytree(getattr(module, attr), copy, ignore=shutil.ignore_patterns("brisbane_drift_study*"))
        monkeypatch.setattr(module, attr, copy)
        dirs[attr] = copy
    return dirs


def test_snapshot_places_the_circuits_on_its_own_calibration(project_dirs):
    """Into the project's folders a snapshot also writes a transpile profile on the new calibration: for the fake
    device's own calibration it places and compiles exactly as the shipped compact profile."""
    from hqc_qiskit.quantum.profiles import load_profile
    from hqc_qiskit.quantum.transpile import transpile_readout

    result = CliRunner().invoke(app, ["noise-snapshot", "fake_brisbane", "--name", "today"])
    assert result.exit_code == 0, result.output
    assert "aer-noise:today" in squashed(result.output)
    assert load_noise_spec("today").profile == "today"
    profile = load_profile("today")
    assert profile.region == "compact" and profile.calibration.endswith("today.calibration.json.gz")
    new, old = transpile_readout("cz", "today", 3, 2), transpile_readout("cz", "ibm_eagle_compact", 3, 2)
    assert new.active_qubits == old.active_qubits and _gates(new.isa) == _gates(old.isa)
    batch = _batch(2)
    assert np.array_equal(make_backend("aer-noise:today").distributions(batch),
                          make_backend("aer-noise:fake_brisbane@ibm_eagle_compact").distributions(batch))
    # a left-over profile of that name alone is not replaced silently either
    for suffix in (".yaml", ".calibration.json.gz"):
        (project_dirs["NOISE_DIR"] / f"today{suffix}").unlink()
    again = CliRunner().invoke(app, ["noise-snapshot", "fake_brisbane", "--name", "today"])
    assert again.exit_code != 0 and squashed(str(project_dirs["PROFILES_DIR"] / "today.yaml")) in squashed(again.output)


def test_a_calibrated_profile_avoids_qubits_that_got_worse(project_dirs, snapshot, tmp_path):
    """Two-qubit gates of the old compact region made 100x worse in the stored calibration: the profile on it
    compiles onto other qubits."""
    from hqc_qiskit.quantum.profiles import load_profile
    from hqc_qiskit.quantum.transpile import transpile_readout

    region = set(transpile_readout("cz", "ibm_eagle_compact", 3, 2).active_qubits)

    def edit(data):
        for gate in data["gates"]:
            if len(gate["qubits"]) == 2 and set(gate["qubits"]) & region:
                for entry in gate["parameters"]:
                    if entry["name"] == "gate_error":
                        entry["value"] = min(1.0, entry["value"] * 100)

    placed = {**load_profile("ibm_eagle_compact").model_dump(exclude_defaults=True), "name": "worse",
              "calibration": _calibration_variant(snapshot, tmp_path, "worse", edit)}
    (tmp_path / "worse_profile.yaml").write_text(json.dumps(placed))
    moved = transpile_readout("cz", str(tmp_path / "worse_profile.yaml"), 3, 2)
    assert not set(moved.active_qubits) & region
