"""Periodic neighbour lists (vesin) and batching of structures into one graph dictionary.

Neighbour lists are built once per structure (training positions never move) and reused;
MD/MC rebuild them per step through :func:`atoms_to_graph`. Keys and shapes: :mod:`.keys`.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from vesin import NeighborList

from . import keys as K


def neighbour_list(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full (both directions) neighbour list within ``cutoff`` Å.

    Returns (senders j, receivers i, shifts S) with r_ij = r_j - r_i + S @ cell.
    Non-periodic structures get a box large enough to hold them and no shifts.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.all():
        box, periodic = np.asarray(atoms.cell, dtype=float), True
    elif not pbc.any():
        box, periodic = np.zeros((3, 3)), False
    else:
        raise ValueError("mixed periodic boundary conditions are not supported; use pbc=True or pbc=False")
    i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=np.asarray(atoms.positions, dtype=float), box=box, periodic=periodic, quantities="ijS"
    )
    return j.astype(np.int64), i.astype(np.int64), shifts.astype(np.float64)


def edge_lengths(atoms: Atoms, senders: np.ndarray, receivers: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """|r_ij| in Å of each edge of a :func:`neighbour_list` (periodic images included), shape (M,)."""
    return np.linalg.norm(atoms.positions[senders] - atoms.positions[receivers] + shifts @ np.asarray(atoms.cell), axis=1)


def atoms_to_graph(atoms: Atoms, cutoff: float, species: list[str], with_labels: bool = False) -> dict:
    """One structure -> graph dictionary (CPU tensors, float64 geometry; cast by :func:`to_device`)."""
    index = {s: k for k, s in enumerate(species)}
    symbols = atoms.get_chemical_symbols()
    try:
        species_idx = torch.tensor([index[s] for s in symbols], dtype=torch.long)
    except KeyError as exc:
        raise ValueError(f"element {exc.args[0]} is not in the model's species {species}") from None
    bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
    if len(bad):
        raise ValueError(f"atom {bad[0]} has a non-finite position {atoms.positions[bad[0]].tolist()}")
    senders, receivers, shifts = neighbour_list(atoms, cutoff)
    lengths = edge_lengths(atoms, senders, receivers, shifts)
    if len(lengths) and lengths.min() < 1e-6:   # the edge direction (spherical harmonics) would be 0/0 = NaN
        k = int(np.argmin(lengths))
        raise ValueError(f"atoms {receivers[k]} and {senders[k]} coincide (periodic images included): "
                         "energy and forces are undefined")
    graph = {
        K.POSITIONS: torch.tensor(atoms.positions, dtype=torch.float64),
        K.SPECIES: species_idx,
        K.EDGE_INDEX: torch.from_numpy(np.stack([senders, receivers])),
        K.SHIFTS: torch.from_numpy(shifts),
        K.CELL: torch.tensor(np.asarray(atoms.cell), dtype=torch.float64).reshape(1, 3, 3),
    }
    if with_labels:
        graph[K.ENERGY] = torch.tensor([atoms.get_potential_energy()], dtype=torch.float64)
        graph[K.FORCES] = torch.tensor(atoms.get_forces(), dtype=torch.float64)
        if "stress" in atoms.calc.results:   # optional label (load_labelled keeps ASE's Voigt order)
            graph[K.STRESS] = torch.tensor(atoms.get_stress(voigt=False), dtype=torch.float64).reshape(1, 3, 3)
    return graph


def collate(graphs: list[dict]) -> dict:
    """Concatenate graphs into one batch, offsetting edge indices; adds ``batch`` and ``n_atoms``."""
    n_atoms = torch.tensor([len(g[K.SPECIES]) for g in graphs], dtype=torch.long)
    offsets = torch.cumsum(n_atoms, 0) - n_atoms
    out = {
        K.POSITIONS: torch.cat([g[K.POSITIONS] for g in graphs]),
        K.SPECIES: torch.cat([g[K.SPECIES] for g in graphs]),
        K.EDGE_INDEX: torch.cat([g[K.EDGE_INDEX] + o for g, o in zip(graphs, offsets)], dim=1),
        K.SHIFTS: torch.cat([g[K.SHIFTS] for g in graphs]),
        K.CELL: torch.cat([g[K.CELL] for g in graphs]),
        K.BATCH: torch.repeat_interleave(torch.arange(len(graphs)), n_atoms),
        K.N_ATOMS: n_atoms,
        K.N_STRUCTURES: len(graphs),
    }
    if all(K.ENERGY in g for g in graphs):
        out[K.ENERGY] = torch.cat([g[K.ENERGY] for g in graphs])
        out[K.FORCES] = torch.cat([g[K.FORCES] for g in graphs])
    labelled = [K.STRESS in g for g in graphs]
    if any(labelled):   # a mixed batch: zeros where a structure has no stress label, and the mask says which
        out[K.STRESS] = torch.cat([g[K.STRESS] if has else torch.zeros(1, 3, 3, dtype=torch.float64)
                                   for g, has in zip(graphs, labelled)])
        out[K.STRESS_MASK] = torch.tensor(labelled)
    return out


def to_device(batch: dict, device: torch.device | str, dtype: torch.dtype) -> dict:
    """Move a batch to ``device``, casting floating tensors to ``dtype``."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
        out[key] = value
    return out
