"""What every CLI module shares: the Rich console and the one-line error exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()

# the option of the studies whose results a rerun would replace (noise-study, shots-study)
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace the results already in --out")]

# the option of every command that can simulate noisy circuits (energy, mc, noise-study, shots-study)
NoisyEngine = Annotated[str, typer.Option(
    "--noisy-engine", help="how aer and aer-noise: backends compute output distributions: batched (default: the "
    "exact engine without noise, the batched density-matrix engine with noise) or aer (Aer's statevector / "
    "density-matrix methods: slower, a cross-check)")]

# the backend options of the commands that run a model's circuits on any backend (energy, mc)
Allocation = Annotated[str, typer.Option(help="uniform or optimal (variance-weighted) shot allocation")]
Profile = Annotated[Optional[str], typer.Option(
    help="transpile profile (default: the noise model's for aer-noise:, the device's plain profile for "
    "runtime backends)")]
NoiseScale = Annotated[float, typer.Option(help="aer-noise: multiply every error rate of the noise model")]
Mitigation = Annotated[str, typer.Option(
    help="none, rem, zne, zne-linear, zne:1,3,5, or zne+rem (aer: mitiq; runtime backends: the runtime "
    "Estimator's own TREX/ZNE)")]
ResilienceLevel = Annotated[Optional[int], typer.Option(
    help="runtime backends: run the runtime Estimator at this resilience level (0, 1 TREX, 2 TREX+ZNE)")]
DynamicalDecoupling = Annotated[bool, typer.Option("--dd", help="runtime backends: dynamical decoupling")]
Twirling = Annotated[bool, typer.Option("--twirling", help="runtime backends: gate and measurement twirling")]
MaxQPUSeconds = Annotated[Optional[float], typer.Option(
    help="runtime backends: refuse to submit any job estimated above this")]


def fail(exc: Exception) -> None:
    """Print ``exc`` as one line (no traceback; not wrapped by Rich, so paths stay whole and logs grep-able;
    not read as markup, so brackets in it survive) and exit with status 2."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(2)


def number_list(text: str, option: str, integer: bool = False, minimum: float = 0) -> list:
    """Comma-separated numbers of ``option`` ('1e3,3000'), each finite and >= ``minimum``; integers where
    ``integer`` (written as such or as whole floats, e.g. 1e4). HQCError naming the option otherwise."""
    import math

    from .errors import HQCError

    values = []
    for item in (t.strip() for t in text.split(",")):
        try:
            value = float(item)
        except ValueError:
            raise HQCError(f"{option} {text!r}: {item!r} is not a number") from None
        if not math.isfinite(value) or value < minimum or (integer and value != int(value)):
            kind = "whole numbers" if integer else "finite numbers"
            raise HQCError(f"{option} {text!r}: {item!r} is not allowed (expected {kind} >= {minimum:g})")
        values.append(int(value) if integer else value)
    return values


def interrupted(checkpoint: Path | None, how: str = "run the same command with --resume to continue from it") -> None:
    """Ctrl-C: say what is kept and how to continue (no traceback), exit 130 as shells expect."""
    if checkpoint is not None and checkpoint.exists():
        console.print(f"interrupted: {checkpoint} keeps what was finished; {how}", soft_wrap=True)
    else:
        console.print("interrupted before the first checkpoint: nothing to resume", soft_wrap=True)
    raise typer.Exit(130)


def refuse_resume_with_overwrite(resume: bool, overwrite: bool, choices: str = "continue the run, or start it over") -> None:
    """``--resume`` and ``--overwrite`` together: HQCError saying what each would do (``choices``), before any work."""
    from .errors import HQCError

    if resume and overwrite:
        raise HQCError(f"--resume and --overwrite exclude each other: {choices}")


def print_cap_check(qpu_seconds: float, cap: float | None) -> None:
    """Dry runs: say whether a real run would submit under ``--max-qpu-seconds``, which the runtime backend
    checks against each energy's estimate before submitting its jobs (and refuses above it)."""
    if cap is None:
        return
    verdict = "a real run would refuse it" if qpu_seconds > cap else "within the cap"
    console.print(f"estimated QPU time per energy {qpu_seconds:.4g} s vs --max-qpu-seconds {cap:g}: {verdict}")


def one_line_summaries(app: typer.Typer) -> None:
    """Give each command of ``app`` whose docstring's first paragraph spans several source lines that paragraph as
    one line (``short_help``): in the command list typer's rich mode keeps single line breaks (typer 0.29), which
    broke summaries mid-sentence at the source's wrap."""
    import inspect

    for info in app.registered_commands:
        first = inspect.cleandoc(info.help or info.callback.__doc__ or "").split("\n\n")[0]
        if info.short_help is None and "\n" in first:
            info.short_help = " ".join(line.strip() for line in first.splitlines())
