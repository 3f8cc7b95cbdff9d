"""The model re-tuned for a scale of the old snapshot (runs/noise_calibration/eagle_retuned, x1.259) on the device
that drifted per qubit (noise_models/brisbane_drift_study.yaml): its classical part with the drifted device's
noisy readouts (the coefficients simulated by drift_retuned; all these models share their circuits), written as
drift_retuned/scale_retuned_on_drift.pt and evaluated on the test set into drift_retuned/cross_evaluation.json.

Part of `bash runs/noise_calibration/run.sh drift`; docs/results.md "Calibrating the noise scale".
"""

from __future__ import annotations

from pathlib import Path

import torch

from hqc_qiskit.checkpoint import atomic_save, atomic_write_json, load_model, model_payload
from hqc_qiskit.evaluate import evaluate
from hqc_qiskit.noise_aware import with_readout
from hqc_qiskit.quantum.noisy_readout import STATE_SUFFIXES

ROOT = Path(__file__).resolve().parents[2]
OUT = Path("runs/noise_calibration")
TEST = Path("data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz")


def main() -> None:
    scale_tuned, drift_tuned = load_model(ROOT / OUT / "eagle_retuned"), load_model(ROOT / OUT / "drift_retuned")
    drift_state = drift_tuned.state_dict()
    state = dict(scale_tuned.state_dict())
    for key, value in drift_state.items():
        if key.endswith(".circuit.weight"):
            assert torch.equal(value, state[key]), f"{key}: not the same circuits"
        if key.endswith(STATE_SUFFIXES):
            state[key] = value
    readout = drift_tuned.config.readout
    model = with_readout(scale_tuned, state, noise_backend=readout.noise_backend, noise_scale=readout.noise_scale)
    path = OUT / "drift_retuned" / "scale_retuned_on_drift.pt"
    atomic_save(model_payload(model), ROOT / path)
    metrics = evaluate(ROOT / path, ROOT / TEST)
    for key in ("model", "data"):      # absolute paths of this machine; the relative ones are below
        metrics.pop(key)
    result = {"model": "runs/noise_calibration/eagle_retuned (re-tuned at x1.259 of the old snapshot)",
              "readouts": f"{readout.noise_backend} x{readout.noise_scale:g}", "checkpoint": str(path),
              "test_data": str(TEST), **metrics}
    atomic_write_json(result, ROOT / OUT / "drift_retuned" / "cross_evaluation.json")
    print(f"{path}: E {metrics['rmse_e_mev_atom']:.2f} meV/atom, F {metrics['rmse_f_ev_a']:.4f} eV/Å")


if __name__ == "__main__":
    main()
