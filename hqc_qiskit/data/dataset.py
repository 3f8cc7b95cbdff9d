"""Load labelled structures from any ASE-readable file, validate them, split them, write them.

Labels are read from configurable keys (``energy_key``, ``forces_key``): ASE's calculator results
for the standard ``energy``/``forces`` names, otherwise ``atoms.info`` / ``atoms.arrays``.
"""

from __future__ import annotations

import gzip
import io
import math
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..errors import DataError, MissingLabelError
from .graph import edge_lengths, neighbour_list

# Å: closer atoms mean a broken file (duplicated atoms, nm instead of Å); the H2 bond is 0.74 Å
MIN_DISTANCE = 0.5


def _label(atoms: Atoms, key: str, per_atom: bool):
    calc_results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    if key in calc_results:
        return calc_results[key]
    store = atoms.arrays if per_atom else atoms.info
    return store.get(key)


def read_structures(path: str | Path, index: str = ":") -> list[Atoms]:
    """Read frames with ASE, turning ASE's parse errors into a :class:`DataError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist")
    try:
        if path.suffixes[-2:] in ([".extxyz", ".gz"], [".xyz", ".gz"]):
            # ASE's extxyz reader seeks backwards, which re-decompresses a .gz file from the start each
            # time (quadratic in the number of frames): decompress once into memory instead
            with gzip.open(path, "rt") as fh:
                frames = ase.io.read(io.StringIO(fh.read()), index=index, format="extxyz")
        else:
            frames = ase.io.read(path, index=index)
    except Exception as exc:  # ASE raises many different types for malformed files
        raise DataError(path, f"ASE could not read it ({type(exc).__name__}: {exc})") from exc
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise DataError(path, "no frames found")
    return frames


def closest_pair(atoms: Atoms, within: float) -> tuple[int, int, float] | None:
    """(i, j, distance in Å) of the closest pair of atoms closer than ``within`` Å, periodic images
    included; None if there is none."""
    senders, receivers, shifts = neighbour_list(atoms, within)
    if len(senders) == 0:
        return None
    distances = edge_lengths(atoms, senders, receivers, shifts)
    k = int(np.argmin(distances))
    i, j = sorted((int(receivers[k]), int(senders[k])))
    return i, j, float(distances[k])


def check_geometry(path: str | Path, k: int, atoms: Atoms, allowed: set[str] | None) -> None:
    """The checks every frame passes before a model sees it (DataError naming file, frame ``k`` and field):
    at least one atom, finite positions, elements in ``allowed`` (if given), periodic in all directions or
    none, a non-singular cell when periodic, no two atoms (or periodic images) closer than ``MIN_DISTANCE``."""
    if len(atoms) == 0:
        raise DataError(path, "frame has no atoms", k, "n_atoms")
    if not np.all(np.isfinite(atoms.positions)):
        raise DataError(path, "non-finite position", k, "positions")
    if allowed is not None:
        unknown = sorted(set(atoms.get_chemical_symbols()) - allowed)
        if unknown:
            raise DataError(path, f"element(s) {unknown} not in the model's species {sorted(allowed)}", k, "symbols")
    if atoms.pbc.any() and not atoms.pbc.all():
        raise DataError(path, f"mixed periodic boundary conditions {atoms.pbc.tolist()} are not supported; "
                        "use pbc=True or pbc=False", k, "pbc")
    if atoms.pbc.any():
        cell = np.asarray(atoms.cell)
        if np.any(np.linalg.norm(cell[atoms.pbc], axis=1) < 1e-8) or abs(np.linalg.det(cell)) < 1e-8:
            raise DataError(path, "periodic frame without a valid cell", k, "cell")
    close = closest_pair(atoms, MIN_DISTANCE)
    if close is not None:
        i, j, d = close
        pair = f"atom {i} and its own periodic image" if i == j else f"atoms {i} and {j}"
        raise DataError(path, f"{pair} are {d:.3f} Å apart (periodic images included; no structure has atoms "
                        f"closer than {MIN_DISTANCE} Å): a duplicated atom, or positions not in Å?", k, "positions")


def load_structures(path: str | Path, species: list[str] | None = None, index: str = ":") -> list[Atoms]:
    """Frames as read (labels, info and arrays kept), each passed through :func:`check_geometry`; no labels
    needed (structures to predict on)."""
    frames = read_structures(path, index)
    allowed = set(species) if species is not None else None
    for k, atoms in enumerate(frames):
        check_geometry(path, k, atoms, allowed)
    return frames


def density_g_cm3(atoms: Atoms) -> float:
    """Mass density of a periodic structure: (mass in amu x amu in g) / (volume in Å^3 x 1e-24 cm^3/Å^3)."""
    from ase.units import _amu

    return float(atoms.get_masses().sum() * _amu * 1e3 / (atoms.get_volume() * 1e-24))


def _stress_label(path: Path, k: int, atoms: Atoms, key: str) -> np.ndarray | None:
    """A frame's stress label as ASE's Voigt 6-vector (eV/Å^3), or None; DataError if it is malformed."""
    from ase.stress import full_3x3_to_voigt_6_stress

    stress = _label(atoms, key, per_atom=False)
    if stress is None:
        return None
    stress = np.asarray(stress, dtype=float)
    if stress.size not in (6, 9):
        raise DataError(path, f"stress has {stress.size} components, expected 6 (Voigt) or 9 (3x3)", k, key)
    if not np.all(np.isfinite(stress)):
        raise DataError(path, "non-finite stress", k, key)
    if not atoms.pbc.all():
        raise DataError(path, "stress on a frame that is not periodic", k, key)
    return stress if stress.size == 6 else full_3x3_to_voigt_6_stress(stress.reshape(3, 3))


def load_labelled(
    path: str | Path,
    energy_key: str = "energy",
    forces_key: str = "forces",
    species: list[str] | None = None,
    require_forces: bool = True,
    index: str = ":",
    stress_key: str = "stress",
) -> list[Atoms]:
    """Frames with validated labels, stored as a SinglePointCalculator (energy eV, forces eV/Å, and stress
    eV/Å^3 in ASE's Voigt order where a frame has one: optional, used by evaluation only).

    Checks, each reported with file, frame and field: the geometry (:func:`check_geometry`), energy
    present and finite, forces present with shape (n_atoms, 3) and finite, a stress (if any) with 6 or 9
    finite components on a periodic frame.
    """
    path = Path(path)
    out = []
    for k, atoms in enumerate(load_structures(path, species, index)):
        n = len(atoms)
        energy = _label(atoms, energy_key, per_atom=False)
        if energy is None:
            raise MissingLabelError(path, f"no energy label (looked for key '{energy_key}')", k, energy_key)
        try:
            energy = float(energy)
        except (TypeError, ValueError):
            raise DataError(path, f"energy {energy!r} is not a number", k, energy_key) from None
        if not math.isfinite(energy):
            raise DataError(path, f"energy is {energy}", k, energy_key)
        forces = _label(atoms, forces_key, per_atom=True)
        if forces is None and require_forces:
            raise MissingLabelError(path, f"no forces label (looked for key '{forces_key}')", k, forces_key)
        if forces is not None:
            forces = np.asarray(forces, dtype=float)
            if forces.shape != (n, 3):
                raise DataError(path, f"forces have shape {forces.shape}, expected ({n}, 3)", k, forces_key)
            bad = np.argwhere(~np.isfinite(forces))
            if len(bad):
                raise DataError(path, f"non-finite force on atom {bad[0][0]}", k, forces_key)
        stress = _stress_label(path, k, atoms, stress_key)
        clean = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        clean.info.update({key: v for key, v in atoms.info.items() if key not in (energy_key, stress_key)})
        labels = {"energy": energy, "forces": forces} | ({} if stress is None else {"stress": stress})
        clean.calc = SinglePointCalculator(clean, **labels)
        out.append(clean)
    return out


def write_structures(path: str | Path, frames: list[Atoms]) -> None:
    """Write extxyz (gzip when the name ends in .gz) atomically: a killed write leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp" + ("".join(path.suffixes[-1:]) if path.suffix == ".gz" else ""))
    ase.io.write(tmp, frames, format="extxyz")
    tmp.replace(path)


def split_indices(n_frames: int, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Seeded random split of ``range(n_frames)`` into consecutive parts of the given sizes."""
    if any(s < 0 for s in sizes) or sum(sizes) > n_frames:
        raise DataError("--sizes", f"sizes {sizes} need {sum(sizes)} frames, the file has {n_frames}")
    order = np.random.default_rng(seed).permutation(n_frames)
    bounds = np.cumsum([0, *sizes])
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def split_file(path: str | Path, sizes: list[int], seed: int, names=("train", "val", "test"),
               overwrite: bool = False) -> list[Path]:
    """Write ``<stem>.<name>.extxyz[.gz]`` next to ``path`` for each part; return their paths.

    Existing part files are replaced only with ``overwrite`` (runs trained on them would silently change)."""
    path = Path(path)
    frames = read_structures(path)
    parts = split_indices(len(frames), sizes, seed)
    if len(parts) > len(names):
        names = tuple(f"part{k}" for k in range(len(parts)))
    stem = path.name.split(".")[0]
    gz = ".gz" if path.suffix == ".gz" else ""
    outs = [path.with_name(f"{stem}.{name}.extxyz{gz}") for name in names[:len(parts)]]
    existing = [out.name for out in outs if out.exists()]
    if existing and not overwrite:
        raise DataError(path, f"split files exist next to it ({', '.join(existing)}): pass --overwrite to replace them")
    for out, idx in zip(outs, parts):
        write_structures(out, [frames[i] for i in idx])
    return outs


def merge_files(paths: list[str | Path], repeats: list[int] | None = None, stress_key: str = "stress") -> list[Atoms]:
    """The labelled frames of ``paths`` in order, each file's repeated ``repeats[i]`` times (oversampling a few
    frames, e.g. DFT single points with a stress, among many; default once each). Every frame is validated as
    :func:`load_labelled` does, and keeps its stress label where it has one and a ``source`` (its file) in info."""
    repeats = [1] * len(paths) if repeats is None else list(repeats)
    if len(repeats) != len(paths):
        raise DataError("--repeat", f"{len(repeats)} count(s) for {len(paths)} files: give one count per file")
    if any(r < 1 for r in repeats):
        raise DataError("--repeat", f"repeat counts must be at least 1, not {repeats}")
    merged = []
    for path, times in zip(paths, repeats):
        frames = load_labelled(path, stress_key=stress_key)
        for atoms in frames:
            atoms.info.setdefault("source", str(path))
        merged.extend(frames * times)
    return merged


def scaled_copy(atoms: Atoms, factor: float) -> Atoms:
    """A copy of ``atoms`` (species, positions, cell, pbc) with cell and positions scaled isotropically by the
    linear ``factor`` (volume x factor^3). Nothing else is kept: labels, wherever a file put them (calculator,
    info, per-atom arrays), and velocities do not hold at the new density."""
    scaled = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    scaled.set_cell(atoms.cell[:] * factor, scale_atoms=True)
    return scaled


def pulled_copy(atoms: Atoms, i: int, j: int, distance: float) -> Atoms:
    """A copy of ``atoms`` (species, positions, cell, pbc; labels dropped) with atoms i and j moved symmetrically
    along their minimum-image bond to ``distance`` Å, everything else fixed."""
    bond = atoms.get_distance(i, j, mic=True, vector=True)
    d0 = float(np.linalg.norm(bond))
    u = bond / d0
    pulled = Atoms(atoms.numbers, positions=atoms.positions.copy(), cell=atoms.cell, pbc=atoms.pbc)
    pulled.positions[i] += (d0 - distance) / 2 * u
    pulled.positions[j] -= (d0 - distance) / 2 * u
    return pulled


def _chosen_frames(path: str | Path, frames: list[int] | None) -> tuple[list[Atoms], list[int]]:
    """(the structures of ``path``, the frame indices ``frames`` or all); DataError naming any out of range."""
    structures = load_structures(path)
    chosen = list(range(len(structures))) if frames is None else frames
    bad = [k for k in chosen if not 0 <= k < len(structures)]
    if bad:
        raise DataError(path, f"frame(s) {bad} out of range: the file has {len(structures)} frames (0-{len(structures) - 1})")
    return structures, chosen


def pull_pair_frames(path: str | Path, frames: list[int] | None, distances: list[float]) -> list[Atoms]:
    """Copies of frames ``frames`` (default all) of ``path`` with each frame's closest pair moved along its bond to
    each of ``distances`` (Å; structures only, labels dropped): inputs for DFT single points that teach a model the
    short-range repulsion closer than its data goes. Each copy's info records ``source_file``, ``source_frame``,
    ``pair_atoms``, ``unmoved_distance_A`` and ``distance_A``."""
    if not distances or any(not MIN_DISTANCE <= d < 4.0 for d in distances):
        raise DataError("--distances", f"pair distances must lie in [{MIN_DISTANCE}, 4) Å, not {distances}")
    structures, chosen = _chosen_frames(path, frames)
    out = []
    for k in chosen:
        pair = closest_pair(structures[k], 4.0)
        if pair is None:
            raise DataError(path, "no two atoms within 4 Å: no pair to pull", k, "positions")
        i, j, d0 = pair
        for d in distances:
            copy = pulled_copy(structures[k], i, j, d)
            _, _, closest = closest_pair(copy, 4.0)
            if closest < d - 1e-9:   # moving the pair brought one of them closer to a third atom
                raise DataError(path, f"pulling atoms {i} and {j} to {d} Å brings another pair to {closest:.3f} Å", k,
                                "positions")
            copy.info.update(source_file=str(path), source_frame=k, pair_atoms=[i, j], unmoved_distance_A=d0,
                             distance_A=float(d))
            out.append(copy)
    return out


def scale_frames(path: str | Path, frames: list[int] | None = None, scales: list[float] | None = None,
                 densities: list[float] | None = None) -> list[Atoms]:
    """Copies of frames ``frames`` (default all) of ``path`` at other densities (structures only, labels dropped:
    inputs for DFT single points, e.g. to label a model's equation of state): each frame scaled isotropically by
    each linear factor of ``scales``, or to each density of ``densities`` (g/cm³). Each copy's info records
    ``source_file``, ``source_frame``, ``scale`` and ``density_g_cm3``."""
    if (scales is None) == (densities is None):
        raise DataError("--scales/--densities", "give exactly one of --scales and --densities")
    values = scales if scales is not None else densities
    if not values or any(x <= 0 for x in values):
        raise DataError("--scales/--densities", f"scale factors and densities must be positive, not {values}")
    structures, chosen = _chosen_frames(path, frames)
    out = []
    for k in chosen:
        atoms = structures[k]
        if not atoms.pbc.all():
            raise DataError(path, "not periodic: scaling to a density needs a cell", k, "pbc")
        rho = density_g_cm3(atoms)
        factors = scales if scales is not None else [(rho / d) ** (1 / 3) for d in densities]
        for s in factors:
            copy = scaled_copy(atoms, s)
            copy.info.update(source_file=str(path), source_frame=k, scale=float(s), density_g_cm3=density_g_cm3(copy))
            out.append(copy)
    return out
