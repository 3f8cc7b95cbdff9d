"""What every CLI module shares: the Rich console and the one-line error exit."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def fail(exc: Exception) -> None:
    """Print ``exc`` as one red line (no traceback) and exit with status 2."""
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)
