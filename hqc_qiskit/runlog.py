"""Step-indexed outputs of long runs (MD, MC): a CSV log and an extxyz trajectory that survive a kill.

Both are appended to as a run goes and flushed at every checkpoint. On resume they are cut back to
the checkpoint's step, so rows written after the last checkpoint (and lost with the process's
state) are not duplicated when the run repeats those steps.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import ase.io
from ase import Atoms

from .errors import HQCError


class StepLog:
    """CSV with a ``step`` first column; ``fields`` name the columns (units in the names)."""

    def __init__(self, path: str | Path, fields: list[str], resume_step: int | None = None):
        self.path = Path(path)
        self.fields = ["step", *fields]
        self._pending: list[str] = []
        if resume_step is None or not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _replace_text(self.path, ",".join(self.fields) + "\n")
        else:
            self._truncate(resume_step)

    def _truncate(self, step: int) -> None:
        lines = self.path.read_text().splitlines()
        if not lines or lines[0].split(",") != self.fields:
            raise HQCError(f"{self.path}: log columns differ from this run's ({','.join(self.fields)}); "
                           "resume with the same command, or start a new output folder")
        kept = [lines[0]] + [ln for ln in lines[1:] if ln and int(ln.split(",", 1)[0]) <= step]
        _replace_text(self.path, "\n".join(kept) + "\n")

    def add(self, step: int, **values) -> None:
        row = [step] + [values[f] for f in self.fields[1:]]
        self._pending.append(",".join(f"{v:.10g}" if isinstance(v, float) else str(v) for v in row))

    def flush(self) -> None:
        if self._pending:
            with self.path.open("a") as fh:
                fh.write("\n".join(self._pending) + "\n")
            self._pending.clear()

    def rows(self) -> list[dict]:
        """All flushed rows as dicts of floats."""
        return read_rows(self.path)


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a step log as dicts of floats."""
    with Path(path).open() as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


class StepTrajectory:
    """extxyz frames carrying ``step`` in ``atoms.info``."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self._pending: list[Atoms] = []
        packed = self.path.with_name(self.path.name + ".gz")
        if resume_step is not None and not self.path.exists() and packed.exists():
            raise HQCError(f"{self.path}: only {packed.name} is here; gunzip it to continue this run")
        if resume_step is None or not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _replace_text(self.path, "")
        else:
            frames = [a for a in self.read() if a.info.get("step", -1) <= resume_step]
            buf = io.StringIO()
            ase.io.write(buf, frames, format="extxyz")
            _replace_text(self.path, buf.getvalue())

    def add(self, atoms: Atoms, step: int, **info) -> None:
        frame = atoms.copy()
        frame.calc = None
        frame.info.update(step=step, **info)
        self._pending.append(frame)

    def flush(self) -> None:
        if self._pending:
            with self.path.open("a") as fh:
                ase.io.write(fh, self._pending, format="extxyz")
            self._pending.clear()

    def read(self) -> list[Atoms]:
        if self.path.stat().st_size == 0:
            return []
        return ase.io.read(self.path, index=":", format="extxyz")


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_resume_checkpoint(path: str | Path, resume: bool, kind: str) -> dict | None:
    """The JSON checkpoint to continue from (``resume``), or None for a fresh run.

    A fresh run refuses to overwrite an existing checkpoint; ``resume`` without one is an error too."""
    import json

    path = Path(path)
    if not path.exists():
        if resume:
            raise HQCError(f"{path}: no {kind} checkpoint to resume from")
        return None
    if not resume:
        raise HQCError(f"{path} exists: pass --resume to continue that run, or choose another output folder")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise HQCError(f"{path}: unreadable {kind} checkpoint ({exc}); start a new output folder") from None


def check_same_options(path: str | Path, saved: dict, now: dict, done_steps: int) -> None:
    """A resumed run must use the options it was started with; only ``steps`` may grow, and not below the
    ``done_steps`` the checkpoint already holds (a shorter request would leave a summary of the longer run under
    options that say otherwise)."""
    differ = sorted(k for k in set(saved) | set(now) if k != "steps" and saved.get(k) != now.get(k))
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in differ)
        raise HQCError(f"{path}: started with other options ({detail}); resume with the same ones")
    if now["steps"] < done_steps:
        raise HQCError(f"{path}: already ran {done_steps} steps, more than the {now['steps']} asked for now; "
                       f"resume with steps >= {done_steps}")
