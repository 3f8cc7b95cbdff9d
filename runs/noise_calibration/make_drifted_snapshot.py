"""A stand-in for "the same device on a later day": FakeBrisbane's calibration with every qubit's T1, T2 and readout
errors and every gate's error multiplied by its own log-normal factor (median 1, sigma 0.4 in log: most
factors between 0.67 and 1.5; seeded), written as the noise model noise_models/brisbane_drift_study.yaml with
`hqc_qiskit.quantum.snapshots.write_snapshot`, the writer of `hqc-qiskit noise-snapshot`.

Per-qubit drift of this kind is what a real device does between calibrations (T1 fluctuations, readout
re-tuning, two-qubit gate re-calibration); it is not a scale of the old snapshot. docs/results.md
"Calibrating the noise scale". Usage: python runs/noise_calibration/make_drifted_snapshot.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qiskit_ibm_runtime.models import BackendProperties

from hqc_qiskit.quantum.devices import fake_backend
from hqc_qiskit.quantum.noise import NOISE_DIR
from hqc_qiskit.quantum.snapshots import write_snapshot

NAME = "brisbane_drift_study"
SEED = 7
SIGMA = 0.4
QUBIT_FIELDS = {"T1": "t", "T2": "t", "readout_error": "ro", "prob_meas0_prep1": "ro", "prob_meas1_prep0": "ro"}


class _Drifted:
    """Looks like a runtime backend to write_snapshot: FakeBrisbane's name, drifted properties."""

    def __init__(self, seed: int = SEED, sigma: float = SIGMA):
        source = fake_backend("fake_brisbane")
        self.name = source.name
        rng = np.random.default_rng(seed)
        data = source.properties().to_dict()
        for qubit in data["qubits"]:
            factor = {"t": rng.lognormal(0.0, sigma), "ro": rng.lognormal(0.0, sigma)}
            for entry in qubit:
                if entry["name"] in QUBIT_FIELDS:
                    value = entry["value"] * factor[QUBIT_FIELDS[entry["name"]]]
                    entry["value"] = min(value, 0.5) if QUBIT_FIELDS[entry["name"]] == "ro" else value
        for gate in data["gates"]:
            factor = rng.lognormal(0.0, sigma)
            for entry in gate["parameters"]:
                if entry["name"] == "gate_error":
                    entry["value"] = min(entry["value"] * factor, 1.0)
        self._properties = BackendProperties.from_dict(data)

    def properties(self, refresh: bool = False) -> BackendProperties:
        return self._properties


if __name__ == "__main__":
    # placement=False: the circuits stay where the old snapshot put them, so that only the noise differs
    path = write_snapshot(_Drifted(), NAME, Path(NOISE_DIR), overwrite=True, placement=False,
                          description=f"SYNTHETIC: FakeBrisbane's calibration with per-qubit and per-gate log-normal "
                                      f"drift (sigma {SIGMA}, seed {SEED}), a stand-in device for the calibration "
                                      "study (runs/noise_calibration/make_drifted_snapshot.py, docs/results.md)")
    print(f"written: {path}")
