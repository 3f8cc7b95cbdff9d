"""Evaluate a trained model on any labelled file: metrics (JSON) and parity plots."""

from __future__ import annotations

from pathlib import Path

import torch
from ase.stress import voigt_6_to_full_3x3_stress

from .checkpoint import load_model
from .data.dataset import load_labelled
from .data.graph import atoms_to_graph
from .metrics import energy_force_metrics, stress_metrics
from .plots import plot_parity
from .torch_device import resolve_device
from .train import predict


def evaluate(run: str | Path, data: str | Path, energy_key: str = "energy", forces_key: str = "forces",
             batch_size: int = 10, device: str = "auto", plot: str | Path | None = None, which: str = "best",
             stress_key: str = "stress") -> dict:
    """RMSE/MAE of E (meV/atom) and F (eV/Å) of the model in ``run`` (run dir or checkpoint) on ``data``; of the
    stress and pressure (GPa) too when frames have a stress label."""
    dev = resolve_device(device)
    model = load_model(run, which=which).to(dev)
    cfg = model.config
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    frames = load_labelled(data, energy_key=energy_key, forces_key=forces_key, species=cfg.species, stress_key=stress_key)
    graphs = [atoms_to_graph(a, cfg.cutoff, cfg.species, with_labels=True) for a in frames]
    with_stress = [k for k, a in enumerate(frames) if "stress" in a.calc.results]
    pred = predict(model, graphs, batch_size, dev, dtype, stress=bool(with_stress))
    metrics = energy_force_metrics(pred["e_pred"], pred["e_ref"], pred["n_atoms"], pred["f_pred"], pred["f_ref"])
    if with_stress:   # frames with a stress label (eV/Å^3, Voigt) only
        refs = [voigt_6_to_full_3x3_stress(frames[k].calc.results["stress"]) for k in with_stress]
        metrics.update(stress_metrics(pred["s_pred"][with_stress], refs))
    metrics["data"] = str(data)
    metrics["model"] = str(run)
    if plot is not None:
        plot_parity(pred, plot, title=f"{Path(run).name} on {Path(data).name}")
    return metrics

