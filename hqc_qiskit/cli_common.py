"""What every CLI module shares: the Rich console and the one-line error exit."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()

# the option of every command that can simulate noisy circuits (energy, mc, noise-study, shots-study)
NoisyEngine = Annotated[str, typer.Option(
    "--noisy-engine", help="how aer-noise: backends simulate noisy circuits: batched (density-matrix engine, "
    "default) or aer (Aer's density-matrix method: slower, a cross-check)")]


def fail(exc: Exception) -> None:
    """Print ``exc`` as one red line (no traceback) and exit with status 2."""
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)
