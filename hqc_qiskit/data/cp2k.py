"""Import CP2K trajectory output (positions + forces xyz, plain or gzip) into labelled ASE frames.

CP2K writes energies in Hartree on the comment line (``i = step, time = fs, E = Eh``), positions
in Å and, by default, forces in Hartree/Bohr (MOTION/PRINT/FORCES; see docs/data.md for the
evidence that the shipped data uses that default). Inside hqc-qiskit everything is eV and Å.
"""

from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers
from ase.units import Bohr, Hartree

from ..errors import DataError

#: multiply a force in this unit by the factor to get eV/Å
FORCE_UNITS = {
    "hartree/bohr": Hartree / Bohr,
    "hartree/angstrom": Hartree,
    "ev/angstrom": 1.0,
}
ENERGY_UNITS = {"hartree": Hartree, "ev": 1.0}

_COMMENT = re.compile(r"\bi\s*=\s*(?P<step>-?\d+).*?\bE\s*=\s*(?P<energy>[^\s,]+)")


@dataclass
class XYZFrame:
    """One frame of a CP2K xyz trajectory, in the file's own units."""

    symbols: list[str]
    values: np.ndarray  # (n_atoms, 3)
    step: int | None
    energy: float | None


def _open_text(path: Path):
    if not path.exists():
        raise DataError(path, "file does not exist")
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def read_cp2k_xyz(path: str | Path) -> list[XYZFrame]:
    """Read every frame of a CP2K ``*-pos-*.xyz`` or ``*-frc-*.xyz`` file (plain or .gz)."""
    path = Path(path)
    frames: list[XYZFrame] = []
    with _open_text(path) as fh:
        lines = fh.read().splitlines()
    pos = 0
    while pos < len(lines):
        if not lines[pos].strip():
            pos += 1
            continue
        frame = len(frames)
        try:
            n_atoms = int(lines[pos].split()[0])
        except ValueError:
            raise DataError(path, f"expected an atom count on line {pos + 1}, got {lines[pos]!r}", frame, "n_atoms") from None
        if pos + 2 + n_atoms > len(lines):
            raise DataError(path, f"file ends inside the frame (expected {n_atoms} atom lines)", frame, "n_atoms")
        comment = lines[pos + 1]
        match = _COMMENT.search(comment)
        step = int(match["step"]) if match else None
        energy = None
        if match:
            try:
                energy = float(match["energy"])
            except ValueError:
                raise DataError(path, f"energy {match['energy']!r} is not a number", frame, "energy") from None
        symbols, values = [], np.empty((n_atoms, 3))
        for k in range(n_atoms):
            parts = lines[pos + 2 + k].split()
            if len(parts) < 4:
                raise DataError(path, f"atom {k}: expected 'symbol x y z', got {lines[pos + 2 + k]!r}", frame, "atoms")
            symbols.append(parts[0])
            try:
                values[k] = [float(v) for v in parts[1:4]]
            except ValueError:
                raise DataError(path, f"atom {k}: non-numeric value in {lines[pos + 2 + k]!r}", frame, "atoms") from None
        frames.append(XYZFrame(symbols, values, step, energy))
        pos += 2 + n_atoms
    if not frames:
        raise DataError(path, "no frames found")
    return frames


def parse_cell_lengths(text: str) -> np.ndarray:
    """``"10.862"`` (cubic) or ``"a,b,c"`` (orthorhombic) -> (3, 3) cell in Å."""
    try:
        lengths = [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:
        raise DataError("--cell", f"cannot read {text!r}: give one length or three, in Å") from None
    if len(lengths) == 1:
        lengths *= 3
    if len(lengths) != 3 or any(not (v > 0 and math.isfinite(v)) for v in lengths):
        raise DataError("--cell", f"cannot read {text!r}: give one positive length or three, in Å")
    return np.diag(lengths)


def read_cp2k_cell(path: str | Path) -> np.ndarray:
    """Cell (3, 3) in Å from the ``&CELL`` section of a CP2K input (A/B/C vectors or ABC)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist")
    text = path.read_text()
    section = re.search(r"&CELL\b(.*?)&END\s+CELL", text, re.S | re.I)
    if section is None:
        raise DataError(path, "no &CELL section found", field="CELL")
    body = section.group(1)
    vectors = {}
    for key in ("A", "B", "C"):
        m = re.search(rf"^\s*{key}\s+(\S+)\s+(\S+)\s+(\S+)", body, re.M)
        if m:
            vectors[key] = [float(v) for v in m.groups()]
    if len(vectors) == 3:
        return np.array([vectors["A"], vectors["B"], vectors["C"]])
    m = re.search(r"^\s*ABC\s+(?:\[angstrom\]\s+)?(\S+)\s+(\S+)\s+(\S+)", body, re.M | re.I)
    if m:
        return np.diag([float(v) for v in m.groups()])
    raise DataError(path, "the &CELL section has neither A/B/C vectors nor ABC", field="CELL")


def import_cp2k(
    pos_path: str | Path,
    frc_path: str | Path,
    cell: np.ndarray,
    force_unit: str = "hartree/bohr",
    energy_unit: str = "hartree",
    wrap: bool = True,
) -> list[Atoms]:
    """Pair positions and forces frame by frame; return ASE Atoms in eV / Å with energy and forces.

    Positions are wrapped into the cell (CP2K writes them unwrapped). Every mismatch between the two
    files (frame count, atom count, element, step, energy) raises :class:`DataError`.
    """
    if force_unit not in FORCE_UNITS:
        raise DataError(frc_path, f"unknown force unit {force_unit!r}; choose one of {sorted(FORCE_UNITS)}")
    if energy_unit not in ENERGY_UNITS:
        raise DataError(pos_path, f"unknown energy unit {energy_unit!r}; choose one of {sorted(ENERGY_UNITS)}")
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-8:
        raise DataError(pos_path, "cell missing or singular: pass --cell or --cp2k-input", field="cell")
    positions, forces = read_cp2k_xyz(pos_path), read_cp2k_xyz(frc_path)
    if len(positions) != len(forces):
        raise DataError(frc_path, f"{len(forces)} frames, but {pos_path} has {len(positions)}", field="n_frames")
    f_factor, e_factor = FORCE_UNITS[force_unit], ENERGY_UNITS[energy_unit]
    out = []
    for k, (p, f) in enumerate(zip(positions, forces)):
        if len(p.symbols) != len(f.symbols):
            raise DataError(frc_path, f"{len(f.symbols)} atoms, but {pos_path} has {len(p.symbols)}", k, "n_atoms")
        if p.symbols != f.symbols:
            raise DataError(frc_path, "element order differs from the positions file", k, "symbols")
        unknown = sorted({s for s in p.symbols if s not in atomic_numbers})
        if unknown:
            raise DataError(pos_path, f"unknown element(s) {unknown}", k, "symbols")
        if p.step is not None and f.step is not None and p.step != f.step:
            raise DataError(frc_path, f"MD step {f.step} but positions frame has step {p.step}", k, "step")
        energy = p.energy if p.energy is not None else f.energy
        if energy is None:
            raise DataError(pos_path, "no 'E = ...' on the comment line", k, "energy")
        if not np.all(np.isfinite(p.values)):
            raise DataError(pos_path, "non-finite position", k, "positions")
        if not np.all(np.isfinite(f.values)):
            raise DataError(frc_path, "non-finite force", k, "forces")
        if not math.isfinite(energy):
            raise DataError(pos_path, "non-finite energy", k, "energy")
        atoms = Atoms(symbols=p.symbols, positions=p.values, cell=cell, pbc=True)
        if wrap:
            atoms.wrap()
        atoms.calc = SinglePointCalculator(atoms, energy=energy * e_factor, forces=f.values * f_factor)
        if p.step is not None:
            atoms.info["md_step"] = p.step
        out.append(atoms)
    return out
