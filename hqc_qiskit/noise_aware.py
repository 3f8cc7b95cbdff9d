"""Noise-aware fine-tuning: train a trained HQC model further through a device's noisy readouts.

On a noisy device the readouts return noisy expectation values, a fixed distortion of the exact ones
(on the Eagle snapshot the forces come out about half their size, docs/results.md "Shot-based forces").
Mitigation (ZNE) undoes some of it at several times the shots; here the model learns it instead: the
readout circuits keep their trained weights and become the device's noisy expectation values
(``quantum.noisy_readout``), and everything classical (backbone, embeddings, decode layers) is trained
further against the DFT labels through them; with ``train_circuits`` the circuit weights as well (exact
gradients of the noisy expectation values, ``quantum.heisenberg``). The result is meant for that device and
noise level only.

Outputs in the run directory, besides the training run's own files: ``source_under_noise.pt`` (the source
model as the noisy device runs it) and ``noise_aware_exact.pt`` (the fine-tuned model on noiseless
readouts), so that every row of the report can be re-evaluated with ``hqc-qiskit evaluate``;
``noise_aware.json`` and ``noise_aware.png`` (the report).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_save, atomic_write_json, model_payload, read_model_payload
from .config import RunConfig, load_config
from .errors import ConfigError
from .model.potential import HQCPotential, build_model
from .progress import stderr_line
from .quantum.noisy_readout import STATE_SUFFIXES, build_noisy_readouts

SOURCE_UNDER_NOISE = "source_under_noise.pt"
TUNED_EXACT = "noise_aware_exact.pt"
REPORT = "noise_aware.json"
REPORT_PLOT = "noise_aware.png"


def readouts_label(row: dict, noise_backend: str) -> str:
    """A report row's readouts: 'exact', 'noisy', or 'noisy (<model>)' when they are another noise model's than
    the report's (a noise-aware source tuned for an older snapshot)."""
    other = row.get("noise_backend")
    if row["readouts"] != "noisy" or other in (None, noise_backend):
        return row["readouts"]
    return f"noisy ({other.removeprefix('aer-noise:').partition('@')[0]})"


def noise_aware_config(source: str | Path, backend: str, out: str | Path, noise_scale: float = 1.0,
                       epochs: int = 30, lr: float = 1e-3, max_minutes: float | None = None,
                       overrides: list[str] = (), train_circuits: bool = False) -> RunConfig:
    """The source run's config with noisy readouts on ``backend``, initialised from the source, writing to
    ``out``; ``overrides`` (key.sub=value) last. The source must have quantum readouts. ``train_circuits``:
    the circuit weights are trained through the noise as well."""
    source = Path(source)
    cfg = load_config(source / "config.yaml")
    if cfg.model.readout.kind != "quantum":
        raise ConfigError(f"{source}: noise-aware training needs a model with quantum readouts "
                          f"(its readout.kind is {cfg.model.readout.kind!r})")
    raw = cfg.model_dump(mode="json")
    raw["name"] = cfg.name if cfg.name.endswith("_noise_aware") else f"{cfg.name}_noise_aware"   # re-tuning keeps it
    raw["output_dir"] = str(out)
    raw["model"]["readout"].update(engine="noisy", noise_backend=backend, noise_scale=noise_scale,
                                   train_circuit_weights=train_circuits)
    raw["train"].update(init_from=str(source), max_epochs=epochs, lr=lr, warmup_steps=0, max_minutes=max_minutes,
                        early_stopping_patience=None)
    return load_config(raw=raw, overrides=list(overrides))


def with_readout(model: HQCPotential, state: dict, **readout) -> HQCPotential:
    """A model with ``model``'s config but these readout settings, holding ``state`` (all of it)."""
    config = model.config.model_dump()
    out = build_model({**config, "readout": {**config["readout"], **readout}})
    out.load_state_dict(state)
    return out.eval().requires_grad_(False)


def _coefficients_at(tuned: HQCPotential, scale: float, state: dict | None = None) -> dict:
    """The noisy readouts' coefficient entries, on ``tuned``'s noise backend at noise ``scale``, for the circuit
    weights of ``state`` (default: ``tuned``'s own; computed unless they are ``tuned``'s own at its scale)."""
    own = state is None
    state = tuned.state_dict() if own else state
    if own and scale == tuned.config.readout.noise_scale:
        return {k: v for k, v in state.items() if k.endswith(STATE_SUFFIXES)}
    config = tuned.config.model_dump()
    rescaled = build_model({**config, "readout": {**config["readout"], "noise_scale": scale,
                                                  "train_circuit_weights": False}})
    rescaled.load_state_dict({k: v for k, v in state.items() if not k.endswith(STATE_SUFFIXES)}, strict=False)
    build_noisy_readouts(rescaled, log=stderr_line)
    return {k: v for k, v in rescaled.state_dict().items() if k.endswith(STATE_SUFFIXES)}


def derived_models(source: str | Path, tuned: HQCPotential, scales: list[float] = (),
                   source_payload: tuple[Path, dict] | None = None) -> dict[str, HQCPotential]:
    """Models for the report, by checkpoint name: the source on the tuned model's noisy readouts
    (``source_under_noise.pt``), the tuned model on exact readouts (``noise_aware_exact.pt``), and for each
    other noise scale s both on readouts at s (``source_under_noise_x<s>.pt``, ``noise_aware_x<s>.pt``).
    Source and tuned model share their circuit weights (checked), so they share the coefficients, unless the
    tuned model trained its circuit weights (then the source's coefficients are computed from its own).
    Derived models keep their circuit weights fixed (``train_circuit_weights`` False). ``source_payload``: the
    source's (path, payload) as ``read_model_payload`` gives them, if already read."""
    path, payload = source_payload or read_model_payload(source)
    source_state = payload["model_state"]
    tuned_state = tuned.state_dict()
    trained_circuits = tuned.config.readout.train_circuit_weights
    for key, value in tuned_state.items():
        if (key.endswith(".circuit.weight") and not trained_circuits
                and not torch.equal(value.cpu(), source_state[key].to(value.dtype).cpu())):
            raise ConfigError(f"{path}: circuit weights {key} differ from the noise-aware model's; not its source")
    plain = {k: v for k, v in tuned_state.items() if not k.endswith(STATE_SUFFIXES)}
    fixed = {"train_circuit_weights": False}

    def source_coefficients(scale):
        return _coefficients_at(tuned, scale, source_state if trained_circuits else None)

    scale0 = tuned.config.readout.noise_scale
    out = {SOURCE_UNDER_NOISE: with_readout(tuned, {**source_state, **source_coefficients(scale0)}, **fixed),
           TUNED_EXACT: with_readout(tuned, plain, engine="exact", noise_backend=None, noise_scale=1.0, **fixed)}
    for scale in scales:
        coefficients = _coefficients_at(tuned, scale)
        out[f"source_under_noise_x{scale:g}.pt"] = with_readout(tuned, {**source_state, **source_coefficients(scale)},
                                                                noise_scale=scale, **fixed)
        out[f"noise_aware_x{scale:g}.pt"] = with_readout(tuned, {**plain, **coefficients}, noise_scale=scale, **fixed)
    return out


def verify_against_backend(model: HQCPotential, frames: list, backend) -> dict:
    """Energy and forces of ``model`` (noisy readouts) against the backend's own noisy simulation of the
    readout circuits, expectation values (no shots), forces by the parameter-shift rule: largest
    differences in meV/atom and eV/Å over ``frames``. They test the coefficients against the circuits."""
    from .quantum.shot_forces import estimate_forces

    de, df, seconds = [], [], time.time()
    for atoms in frames:
        est = estimate_forces(model, atoms, backend, shots=None, uncertainty=False)
        de.append(abs(est.energy - est.exact_energy) / len(atoms) * 1000)
        df.append(float(np.max(np.abs(est.forces - est.exact_forces))))
    return {"frames": len(frames), "max_energy_difference_mev_atom": max(de), "max_force_difference_ev_a": max(df),
            "circuits_per_frame": est.circuits, "wall_s": time.time() - seconds}


def report(run_dir: str | Path, source: str | Path, test_data: str | Path, verify_frames: int = 1,
           drift_scales: list[float] = (), batch_size: int = 10) -> dict:
    """Test-set metrics of the source and the noise-aware model, each on exact readouts and on the noisy ones
    (at the trained noise scale, and at each of ``drift_scales``: the same device with its error rates
    drifted); the derived checkpoints next to the run, a plot, and the backend cross-check on
    ``verify_frames`` frames."""
    from .checkpoint import load_model
    from .data.dataset import load_labelled
    from .evaluate import evaluate
    from .plots import plot_noise_aware
    from .quantum.backends import make_backend

    run_dir = Path(run_dir)
    tuned = load_model(run_dir)
    readout = tuned.config.readout
    scales = [s for s in dict.fromkeys(drift_scales) if s != readout.noise_scale]
    source_payload = read_model_payload(source)
    coverage = read_model_payload(run_dir)[1].get("training_coverage")   # the tuned model's (includes the source's)
    for name, model in derived_models(source, tuned, scales, source_payload).items():
        atomic_save(model_payload(model, coverage), run_dir / name)
    # a source with noisy readouts (re-tuning a noise-aware model for drifted noise) is reported on its own
    source_readout = source_payload[1]["model_config"].get("readout", {})
    noisy_source = source_readout.get("engine") == "noisy"
    own = (source_readout["noise_backend"], source_readout["noise_scale"]) if noisy_source else (None, None)
    tuned_at = (readout.noise_backend, readout.noise_scale)
    # (model, checkpoint, (noise backend, scale) of its readouts, both None for exact ones)
    plan = [("source", Path(source), own), ("source", run_dir / SOURCE_UNDER_NOISE, tuned_at)]
    plan += [("source", run_dir / f"source_under_noise_x{s:g}.pt", (readout.noise_backend, s)) for s in scales]
    plan += [("noise-aware", run_dir, tuned_at)]
    plan += [("noise-aware", run_dir / f"noise_aware_x{s:g}.pt", (readout.noise_backend, s)) for s in scales]
    plan += [("noise-aware", run_dir / TUNED_EXACT, (None, None))]
    rows = []
    for label, checkpoint, (backend, scale) in plan:
        metrics = evaluate(checkpoint, test_data, batch_size=batch_size)
        metrics.pop("model")
        rows.append({**metrics, "model": label, "readouts": "exact" if scale is None else "noisy",
                     "noise_scale": scale, "noise_backend": backend, "checkpoint": str(checkpoint)})
    out = {"source": str(source), "run": str(run_dir), "noise_backend": readout.noise_backend,
           "noise_scale": readout.noise_scale, "test_data": os.path.normpath(test_data), "rows": rows}
    if verify_frames:
        frames = load_labelled(test_data, species=tuned.config.species)[:verify_frames]
        out["verify"] = verify_against_backend(tuned, frames, make_backend(readout.noise_backend, scale=readout.noise_scale))
    atomic_write_json(out, run_dir / REPORT)
    plot_noise_aware(out, run_dir / REPORT_PLOT)
    return out
