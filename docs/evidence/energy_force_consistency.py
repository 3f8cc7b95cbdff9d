"""Energy-force consistency check of the source CP2K data (docs/data.md): which force unit fits dE = -W?"""

import gzip
from pathlib import Path

import numpy as np
from ase.units import Bohr, Hartree

SRC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "si_liquid_3000K"


def read(path):
    frames, energies, steps = [], [], []
    with gzip.open(path, "rt") as fh:
        while line := fh.readline():
            n = int(line)
            comment = fh.readline()
            steps.append(int(comment.split(",")[0].split("=")[1]))
            energies.append(float(comment.split("E =")[1]))
            frames.append([[float(v) for v in fh.readline().split()[1:4]] for _ in range(n)])
    return np.array(frames), np.array(energies), np.array(steps)


r, e, steps = read(SRC / "Si-pos-1.xyz.gz")
f, _, _ = read(SRC / "Si-frc-1.xyz.gz")
consecutive = np.diff(steps) == 20
de = np.diff(e)[consecutive]                                   # Hartree
dr = np.diff(r, axis=0)[consecutive]                           # Å
work = -np.einsum("tai,tai->t", 0.5 * (f[1:] + f[:-1])[consecutive], dr)  # (force unit) x Å
print(f"{consecutive.sum()} consecutive pairs")
for unit, w in (("Hartree/Bohr", work / Bohr), ("Hartree/Angstrom", work)):
    slope = np.sum(w * de) / np.sum(w * w)
    rms = np.sqrt(np.mean((de - w) ** 2)) * Hartree * 1000
    print(f"if forces are {unit:17s}: slope dE/W = {slope:.3f}, r = {np.corrcoef(w, de)[0, 1]:.4f}, rms(dE - W) = {rms:.0f} meV")
