"""The command line shared by the evidence scripts: gather the numbers from committed runs into a JSON beside the
script, draw its figure from that JSON; ``--plot`` only redraws the figure from the committed JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np

from hqc_qiskit.checkpoint import atomic_write_json


def read_json(path: Path):
    """The JSON file at ``path`` (a committed run's output)."""
    return json.loads(Path(path).read_text())


def exact_energies_per_atom(run: Path, frames) -> np.ndarray:
    """Exact-engine potential energy per atom (eV) of each frame, by the model of the run folder ``run``. (F,)"""
    from hqc_qiskit.calculator import HQCCalculator

    calc = HQCCalculator(run)
    out = []
    for a in frames:
        a = a.copy()
        a.calc = calc
        out.append(a.get_potential_energy() / len(a))
    return np.array(out)


def save_figure(fig, path: Path, dpi: int) -> None:
    """Lay out ``fig``, write it to ``path`` (its folder made) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def main(doc: str, gather: Callable[[], dict], out_json: Path, plot: Callable[[dict], None],
         summary: Callable[[dict], None] | None = None) -> None:
    """Without ``--plot``: ``gather()``, write it to ``out_json`` (atomically), ``summary(result)`` if given; then
    ``plot(result)`` in both cases."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plot", action="store_true", help="only redraw the plot from the JSON")
    if parser.parse_args().plot:
        result = read_json(out_json)
    else:
        result = gather()
        atomic_write_json(result, out_json)
        if summary is not None:
            summary(result)
    plot(result)
