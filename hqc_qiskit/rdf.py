"""Radial distribution function g(r) of periodic frames, block-averaged error bars, and distances between two g(r).

Pair distances come from vesin's neighbour list (any r_max, also beyond half the box); the
normalisation to the ideal gas is the textbook one, written here because it is three lines:
g(r) = 2 h(r) / (N rho 4 pi r^2 dr) per frame, rho = N / V, h the half-list pair histogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from vesin import NeighborList

from .autocorr import block_average
from .errors import HQCError


@dataclass
class RDF:
    r: np.ndarray         # (nbins,) bin centres, Å
    g: np.ndarray         # (nbins,) mean over blocks
    err: np.ndarray       # (nbins,) standard error of the mean over blocks (NaN with one block)
    n_frames: int
    n_blocks: int

    def as_dict(self) -> dict:
        return {"r": self.r.tolist(), "g": self.g.tolist(), "err": self.err.tolist(),
                "n_frames": self.n_frames, "n_blocks": self.n_blocks}


def frame_rdf(atoms: Atoms, r_max: float, n_bins: int) -> np.ndarray:
    """g(r) of one periodic frame on ``n_bins`` equal bins of [0, r_max] Å."""
    if not np.all(atoms.pbc) or atoms.cell.volume <= 0:
        raise HQCError("g(r) needs periodic frames with a cell")
    d = NeighborList(cutoff=r_max, full_list=False).compute(
        points=np.asarray(atoms.positions, float), box=np.asarray(atoms.cell, float), periodic=True, quantities="d")[0]
    hist, edges = np.histogram(d, bins=n_bins, range=(0.0, r_max))
    n = len(atoms)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 2.0 * hist / (n * (n / atoms.cell.volume) * shell)


def compute_rdf(frames: list[Atoms], r_max: float = 6.0, n_bins: int = 120, n_blocks: int = 5) -> RDF:
    """Mean g(r) over ``frames`` with the standard error from ``n_blocks`` contiguous blocks (fewer if fewer frames)."""
    if not frames:
        raise HQCError("no frames to compute g(r) from")
    if not (np.isfinite(r_max) and r_max > 0) or n_bins < 1 or n_blocks < 1:
        raise HQCError(f"g(r) needs r_max > 0 Å, n_bins >= 1 and blocks >= 1; got {r_max}, {n_bins}, {n_blocks}")
    per_frame = np.stack([frame_rdf(a, r_max, n_bins) for a in frames])
    mean, err, used = block_average(per_frame, n_blocks)
    r = (np.arange(n_bins) + 0.5) * r_max / n_bins
    return RDF(r, mean, err, len(frames), used)


def first_peak(rdf: RDF) -> tuple[float, float]:
    """Position (Å) and height of the first maximum: the highest bin before g(r) falls back below 1 after rising above it."""
    above = np.nonzero(rdf.g > 1.0)[0]
    if not len(above):
        return float("nan"), float("nan")
    start = above[0]
    below = np.nonzero(rdf.g[start:] < 1.0)[0]
    stop = start + (below[0] if len(below) else len(rdf.g) - start)
    k = start + int(np.argmax(rdf.g[start:stop]))
    return float(rdf.r[k]), float(rdf.g[k])


def compare_rdf(rdf: RDF, ref: RDF) -> dict:
    """Numbers for how far ``rdf`` is from ``ref`` (same bins): first-peak shifts and the integrated squared difference."""
    if rdf.r.shape != ref.r.shape or not np.allclose(rdf.r, ref.r):
        raise HQCError("the two g(r) use different bins; compute them with the same r_max and n_bins")
    dr = rdf.r[1] - rdf.r[0]
    (r1, g1), (r0, g0) = first_peak(rdf), first_peak(ref)
    return {"first_peak_r": r1, "first_peak_g": g1, "ref_first_peak_r": r0, "ref_first_peak_g": g0,
            "first_peak_shift": r1 - r0, "first_peak_height_diff": g1 - g0,
            "integrated_sq_diff": float(np.sum((rdf.g - ref.g) ** 2) * dr)}
