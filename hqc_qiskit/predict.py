"""Label structures with a trained model: energies, forces and stresses written into a copy of the input file.

The output keeps everything the input had (reference labels, info, arrays) and adds the model's
predictions under prefixed keys, as MACE's ``mace_eval_configs`` does: ``<prefix>energy`` in
``atoms.info`` (eV), ``<prefix>forces`` in ``atoms.arrays`` (eV/Å, shape (n_atoms, 3)) and, for periodic
frames, ``<prefix>stress`` in ``atoms.info`` (eV/Å^3, ASE's Voigt order xx yy zz yz xz xy and sign). The
input needs no labels; every frame passes the same geometry checks as training data.

With several models (a committee, e.g. the same config trained with different seeds) the predictions are
the committee means, and the spread between the members is written beside them, the usual signal for
frames a committee has not learned (active learning, extrapolation in MD):

- ``<prefix>energy_std`` (info, eV): standard deviation of the members' energies,
- ``<prefix>forces_dev`` (arrays, eV/Å, shape (n_atoms,)): per atom sqrt(mean_m |F_m - F_mean|^2),
- ``<prefix>max_forces_dev`` (info, eV/Å): its largest value in the frame (DP-GEN's ``max_devi_f``),

all with the population convention (divide by the number of members, as DP-GEN does).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from ase.stress import full_3x3_to_voigt_6_stress

from .checkpoint import load_model, refuse_to_overwrite
from .data.dataset import load_structures, write_structures
from .data.graph import atoms_to_graph
from .errors import DataError, HQCError
from .metrics import force_deviation
from .torch_device import resolve_device
from .train import predict

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prediction_keys(prefix: str) -> tuple[str, str, str]:
    """(energy key, forces key, stress key) for ``prefix``; HQCError unless they are plain extxyz names."""
    if not _KEY.fullmatch(f"{prefix}energy") or not prefix:
        raise HQCError(f"--prefix {prefix!r}: use letters, digits and '_' (not empty, not starting with a digit), "
                       "e.g. 'hqc_'; the prefix keeps predictions apart from the file's own labels")
    return f"{prefix}energy", f"{prefix}forces", f"{prefix}stress"


def committee_keys(prefix: str) -> tuple[str, str, str]:
    """(energy spread key (info), per-atom force deviation key (arrays), frame maximum key (info))."""
    return f"{prefix}energy_std", f"{prefix}forces_dev", f"{prefix}max_forces_dev"


def _load_committee(runs: list, which: str, dev) -> list:
    """The models of ``runs``; HQCError if they do not know the same elements (a committee must)."""
    if not runs:
        raise HQCError("give at least one run directory or checkpoint")
    models = [load_model(run, which=which).to(dev).eval() for run in runs]
    for run, model in zip(runs[1:], models[1:]):
        if sorted(model.config.species) != sorted(models[0].config.species):
            raise HQCError(f"{run} knows elements {model.config.species}, {runs[0]} knows {models[0].config.species}: "
                           "the models of a committee must know the same elements")
    return models


def predict_file(run: str | Path | list, data: str | Path, out: str | Path, prefix: str = "hqc_", which: str = "best",
                 device: str = "auto", batch_size: int = 10, overwrite: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``data``'s frames with the predictions of the model in ``run`` (run dir or checkpoint; a list of
    them for a committee) to ``out`` (extxyz; gzip when it ends in .gz; written atomically). Returns a
    summary: frames, atoms, keys, seconds, and for a committee the frames' largest force deviations."""
    data, out = Path(data), Path(out)
    runs = [run] if isinstance(run, (str, Path)) else list(run)
    keys = prediction_keys(prefix)
    spread_keys = committee_keys(prefix) if len(runs) > 1 else ()
    if out.resolve() == data.resolve():
        raise HQCError(f"{out} is the input file: choose another --out (the input is never rewritten)")
    if not overwrite:
        refuse_to_overwrite(out)
    if batch_size < 1:
        raise HQCError(f"--batch-size {batch_size}: must be at least 1")
    dev = resolve_device(device)
    models = _load_committee(runs, which, dev)
    frames = load_structures(data, species=models[0].config.species)
    energy_key, forces_key, stress_key = keys
    for k, atoms in enumerate(frames):   # a label or an earlier prediction under these names is never replaced
        for key in (*keys, *spread_keys):
            if key in atoms.info or key in atoms.arrays:
                raise DataError(data, f"already has '{key}' (an earlier prediction?): choose another --prefix", k, key)
    start = time.perf_counter()
    periodic = [bool(atoms.pbc.all()) for atoms in frames]
    chunk = 20 * batch_size   # neighbour lists of a chunk at a time: memory independent of the file's length
    n_atoms, total = 0, len(frames) * len(models)
    for first in range(0, len(frames), chunk):
        part = frames[first : first + chunk]
        preds, graphs_by_cutoff = [], {}   # members of one config share their neighbour lists
        for m, model in enumerate(models):
            cfg = model.config
            key = (cfg.cutoff, tuple(cfg.species))
            if key not in graphs_by_cutoff:
                graphs_by_cutoff[key] = [atoms_to_graph(atoms, cfg.cutoff, cfg.species) for atoms in part]
            graphs = graphs_by_cutoff[key]
            done = m * len(frames) + first
            tick = None if progress is None else (lambda d, _total, done=done: progress(done + d, total))
            dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
            preds.append(predict(model, graphs, batch_size, dev, dtype, progress=tick, stress=any(periodic)))
        bounds = np.cumsum([0, *preds[0]["n_atoms"]])
        energies = np.stack([p["e_pred"] for p in preds])          # (M, B) eV
        forces = np.stack([p["f_pred"] for p in preds])            # (M, N, 3) eV/Å
        for k, atoms in enumerate(part):
            atoms.info[energy_key] = float(energies[:, k].mean())
            atoms.arrays[forces_key] = forces[:, bounds[k] : bounds[k + 1]].mean(axis=0)
            if periodic[first + k]:
                atoms.info[stress_key] = full_3x3_to_voigt_6_stress(np.mean([p["s_pred"][k] for p in preds], axis=0))
            if spread_keys:
                deviation = force_deviation(forces[:, bounds[k] : bounds[k + 1]])           # (n,)
                atoms.info[spread_keys[0]] = float(energies[:, k].std())
                atoms.arrays[spread_keys[1]] = deviation
                atoms.info[spread_keys[2]] = float(deviation.max())
        n_atoms += int(bounds[-1])
    seconds = time.perf_counter() - start
    write_structures(out, frames)
    summary = {"model": str(runs[0]) if len(runs) == 1 else [str(r) for r in runs], "data": str(data), "out": str(out),
               "frames": len(frames), "atoms": n_atoms, "energy_key": energy_key, "forces_key": forces_key,
               "stress_key": stress_key if any(periodic) else None, "seconds": seconds, "device": str(dev)}
    if spread_keys:
        summary.update(committee=len(runs), spread_keys=list(spread_keys),
                       max_forces_dev=[float(atoms.info[spread_keys[2]]) for atoms in frames])
    return summary
