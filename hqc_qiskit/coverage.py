"""What a model was trained on, to say when a simulation leaves it.

The training coverage of a model: for every species pair ("Si-Si") the closest distance (Å) between two atoms
of the training structures (periodic images included), and the range of their densities (g/cm³, periodic
structures). Closer than that, no label taught the model its short-range repulsion: what it predicts there is
extrapolation (in an NPT run at 10 GPa a model without a pair repulsion let two atoms come to 1.59 Å, where
DFT pushes them apart with 30 eV/Å and the model pulled them together; docs/results.md).

Training stores it in every checkpoint (``training_coverage``) and in summary.json; a fine-tune's coverage
includes its source's. For runs trained before it was stored, :func:`coverage_of` computes it from the run's
config.yaml (its training files, and its source's through ``train.init_from``) when those files are there.
MD logs the closest pair at every log row and its summary counts the rows below the coverage; ``hqc-qiskit data
info FILE --model RUN`` counts a file's frames below it.

Hand-written: the closest pair per species pair and the merging are this project's own bookkeeping; the
neighbour search is vesin's (:func:`.data.graph.neighbour_list`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from .data.dataset import density_g_cm3
from .data.graph import edge_lengths, neighbour_list

KEY = "training_coverage"
REACH = 4.0   # Å: closest pairs are looked for within this distance (beyond it: none reported)


def pair_name(a: str, b: str) -> str:
    """Order-free name of a species pair: pair_name('Si', 'O') == 'O-Si'."""
    return "-".join(sorted((a, b)))


def closest_pairs(atoms: Atoms, within: float = REACH) -> dict[str, float]:
    """Closest distance (Å) of each species pair present within ``within`` Å (periodic images included)."""
    senders, receivers, shifts = neighbour_list(atoms, within)
    if len(senders) == 0:
        return {}
    distances = edge_lengths(atoms, senders, receivers, shifts)
    elements, kind = np.unique(atoms.get_chemical_symbols(), return_inverse=True)   # per atom: index of its element
    a, b = np.minimum(kind[senders], kind[receivers]), np.maximum(kind[senders], kind[receivers])
    code = a * len(elements) + b   # one integer per unordered element pair
    return dict(sorted((pair_name(elements[c // len(elements)], elements[c % len(elements)]), float(distances[code == c].min()))
                       for c in np.unique(code)))


def coverage_of_frames(frames: list[Atoms]) -> dict:
    """Coverage of a list of structures: ``closest_pair_A`` {pair: Å}, ``density_g_cm3`` [min, max] of the
    periodic ones (None without any), ``n_frames``."""
    closest: dict[str, float] = {}
    for atoms in frames:
        for name, d in closest_pairs(atoms).items():
            closest[name] = min(d, closest.get(name, np.inf))
    rho = [density_g_cm3(a) for a in frames if a.pbc.all()]
    return {"closest_pair_A": dict(sorted(closest.items())), "density_g_cm3": [min(rho), max(rho)] if rho else None,
            "n_frames": len(frames)}


def merge(*coverages: dict | None) -> dict | None:
    """One coverage holding all of them (closest distance per pair: the smallest; densities: the widest range);
    None entries (unknown coverage) are skipped, and all unknown gives None."""
    known = [c for c in coverages if c is not None]
    if not known:
        return None
    closest: dict[str, float] = {}
    for c in known:
        for name, d in c["closest_pair_A"].items():
            closest[name] = min(d, closest.get(name, np.inf))
    ranges = [c["density_g_cm3"] for c in known if c.get("density_g_cm3")]
    return {"closest_pair_A": dict(sorted(closest.items())),
            "density_g_cm3": [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else None,
            "n_frames": sum(c["n_frames"] for c in known)}   # frames trained on, a fine-tune's and its source's


def training_closest(coverage: dict, pair: str) -> float:
    """The training data's closest distance (Å) of a species pair; REACH for a pair it never held within REACH
    (any such pair closer than REACH is then outside it)."""
    return coverage["closest_pair_A"].get(pair, REACH)


def pair_margin(closest: dict[str, float], coverage: dict) -> float:
    """Smallest distance minus the training's closest over the species pairs of ``closest`` (as
    :func:`closest_pairs` gives), Å: negative when a pair is closer than any in the training data; nan when
    there is no pair."""
    return min((d - training_closest(coverage, name) for name, d in closest.items()), default=np.nan)


def below(closest: dict[str, float], coverage: dict) -> dict[str, tuple[float, float]]:
    """The species pairs of ``closest`` closer than the training data's: {pair: (distance, training's closest)}."""
    return {name: (d, training_closest(coverage, name)) for name, d in closest.items()
            if d < training_closest(coverage, name)}


def frames_outside(frames: list[Atoms], coverage: dict) -> dict:
    """How a list of structures leaves a training coverage: ``frames``; ``frames_below_training`` (how many hold a
    pair closer than the training's) with ``closest_below`` {frame, pair, distance_A, training_A} (the closest
    such pair; None without one); ``frames_outside_densities`` of the ``periodic_frames`` (None when either the
    coverage or the frames have no density)."""
    close = [(k, below(closest_pairs(a), coverage)) for k, a in enumerate(frames)]
    close = [(k, pairs) for k, pairs in close if pairs]
    closest = None
    if close:
        d, floor, k, pair = min((d, floor, k, pair) for k, pairs in close for pair, (d, floor) in pairs.items())
        closest = {"frame": k, "pair": pair, "distance_A": d, "training_A": floor}
    rho_range = coverage.get("density_g_cm3")
    periodic = [density_g_cm3(a) for a in frames if a.pbc.all()]
    outside = (sum(not rho_range[0] - 1e-9 <= rho <= rho_range[1] + 1e-9 for rho in periodic)
               if rho_range and periodic else None)
    return {"frames": len(frames), "frames_below_training": len(close), "closest_below": closest,
            "frames_outside_densities": outside, "periodic_frames": len(periodic)}


def _config_path(model_path: Path) -> Path:
    """config.yaml of a run directory, or of the run directory holding a checkpoint file."""
    return model_path / "config.yaml" if model_path.is_dir() else model_path.parent / "config.yaml"


def coverage_of(model_path: str | Path) -> dict | None:
    """Training coverage of a trained model (run directory or checkpoint): the one stored at training, else
    computed from its config.yaml's training files (and its ``init_from`` source's, where that is still
    there); None when neither exists. HQCError naming the path when it holds no model."""
    from .checkpoint import read_model_payload

    return _coverage(Path(model_path), read_model_payload(model_path)[1], frozenset())


def _coverage(model_path: Path, payload: dict, seen: frozenset) -> dict | None:
    from .checkpoint import read_model_payload
    from .config import load_config
    from .errors import HQCError
    from .train import training_structures

    if payload.get(KEY) is not None:
        return payload[KEY]
    config_path = _config_path(model_path)
    if not config_path.exists():
        return None
    try:
        config = load_config(config_path)
        data = config.data
        train_file = data.file if data.file is not None else data.train
        if train_file is None or not Path(train_file).exists():
            return None
        own = coverage_of_frames(training_structures(config))
        source = config.train.init_from
        seen = seen | {config_path.resolve()}
        if source is None or _config_path(Path(source)).resolve() in seen:   # none, or a loop of sources
            return own
        return merge(own, _coverage(Path(source), read_model_payload(source)[1], seen))
    except HQCError:   # a config or source no longer readable here: what it held is unknown
        return None


def describe(coverage: dict | None) -> str:
    """One line for people: 'closest Si-Si 1.868 Å, density 2.33-2.90 g/cm³ (980 frames)'."""
    if coverage is None:
        return "unknown (trained before coverage was recorded, and its training files are not here)"
    pairs = ", ".join(f"closest {name} {d:.3f} Å" for name, d in coverage["closest_pair_A"].items()) or "no pair within 4 Å"
    rho = coverage.get("density_g_cm3")
    if rho:
        pairs += f", density {rho[0]:.3f} g/cm³" if rho[0] == rho[1] else f", density {rho[0]:.3f}-{rho[1]:.3f} g/cm³"
    return pairs + f" ({coverage['n_frames']} training frames)"
