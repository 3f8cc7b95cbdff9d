"""Progress bars on long work: one Rich bar on a terminal, nothing in logs and CI (where the longest steps
write a line before and after instead, :func:`stderr_line`)."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, enabled: bool) -> Iterator:
    """A Rich progress bar on a terminal, updated by the yielded callback ``(done, total)`` (``total`` None
    until the first call when unknown up front); None otherwise (logs, CI)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def stderr_line(text: str) -> None:
    """One line on stderr, flushed (a log's record of a long step where no progress bar shows)."""
    print(text, file=sys.stderr, flush=True)
