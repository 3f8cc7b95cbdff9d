"""Label structures with a trained model: energies, forces and stresses written into a copy of the input file.

The output keeps everything the input had (reference labels, info, arrays) and adds the model's
predictions under prefixed keys, as MACE's ``mace_eval_configs`` does: ``<prefix>energy`` in
``atoms.info`` (eV), ``<prefix>forces`` in ``atoms.arrays`` (eV/Å, shape (n_atoms, 3)) and, for periodic
frames, ``<prefix>stress`` in ``atoms.info`` (eV/Å^3, ASE's Voigt order xx yy zz yz xz xy and sign). The
input needs no labels; every frame passes the same geometry checks as training data.
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
from .torch_device import resolve_device
from .train import predict

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prediction_keys(prefix: str) -> tuple[str, str, str]:
    """(energy key, forces key, stress key) for ``prefix``; HQCError unless they are plain extxyz names."""
    if not _KEY.fullmatch(f"{prefix}energy") or not prefix:
        raise HQCError(f"--prefix {prefix!r}: use letters, digits and '_' (not empty, not starting with a digit), "
                       "e.g. 'hqc_'; the prefix keeps predictions apart from the file's own labels")
    return f"{prefix}energy", f"{prefix}forces", f"{prefix}stress"


def predict_file(run: str | Path, data: str | Path, out: str | Path, prefix: str = "hqc_", which: str = "best",
                 device: str = "auto", batch_size: int = 10, overwrite: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``data``'s frames with the predictions of the model in ``run`` (run dir or checkpoint) to ``out``
    (extxyz; gzip when it ends in .gz; written atomically). Returns a summary: frames, atoms, keys, seconds."""
    data, out = Path(data), Path(out)
    energy_key, forces_key, stress_key = prediction_keys(prefix)
    if out.resolve() == data.resolve():
        raise HQCError(f"{out} is the input file: choose another --out (the input is never rewritten)")
    if not overwrite:
        refuse_to_overwrite(out)
    if batch_size < 1:
        raise HQCError(f"--batch-size {batch_size}: must be at least 1")
    dev = resolve_device(device)
    model = load_model(run, which=which).to(dev).eval()
    cfg = model.config
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    frames = load_structures(data, species=cfg.species)
    for k, atoms in enumerate(frames):   # a label or an earlier prediction under these names is never replaced
        for key, store in ((energy_key, atoms.info), (forces_key, atoms.arrays), (stress_key, atoms.info)):
            if key in store:
                raise DataError(data, f"already has '{key}' (an earlier prediction?): choose another --prefix", k, key)
    start = time.perf_counter()
    periodic = [bool(atoms.pbc.all()) for atoms in frames]
    chunk = 20 * batch_size   # neighbour lists of a chunk at a time: memory independent of the file's length
    n_atoms = 0
    for first in range(0, len(frames), chunk):
        part = frames[first : first + chunk]
        graphs = [atoms_to_graph(atoms, cfg.cutoff, cfg.species) for atoms in part]
        tick = None if progress is None else (lambda done, _total, first=first: progress(first + done, len(frames)))
        pred = predict(model, graphs, batch_size, dev, dtype, progress=tick, stress=any(periodic))
        bounds = np.cumsum([0, *pred["n_atoms"]])
        for k, atoms in enumerate(part):
            atoms.info[energy_key] = float(pred["e_pred"][k])
            atoms.arrays[forces_key] = pred["f_pred"][bounds[k] : bounds[k + 1]]
            if periodic[first + k]:
                atoms.info[stress_key] = full_3x3_to_voigt_6_stress(pred["s_pred"][k])
        n_atoms += int(bounds[-1])
    seconds = time.perf_counter() - start
    write_structures(out, frames)
    return {"model": str(run), "data": str(data), "out": str(out), "frames": len(frames),
            "atoms": n_atoms, "energy_key": energy_key, "forces_key": forces_key,
            "stress_key": stress_key if any(periodic) else None,
            "seconds": seconds, "device": str(dev)}
