"""Command-line interface: ``hqc-qiskit data|train|evaluate ...`` (Typer + Rich)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .cli_common import console, interrupted, number_list, one_line_summaries, refuse_resume_with_overwrite
from .progress import progress_bar
from .cli_common import fail as _fail
from .errors import HQCError

app = typer.Typer(
    help="Hybrid quantum-classical ML interatomic potentials with Qiskit variational-circuit readouts.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
data_app = typer.Typer(help="Import, split and inspect labelled structure data.", no_args_is_help=True)


def _print_versions(value: bool) -> None:
    if not value:
        return
    from .environment import package_versions

    for name, version in package_versions().items():
        console.print(f"{name} {version or '(not installed)'}", highlight=False)
    raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_versions, is_eager=True,
                                      help="print the versions of hqc-qiskit and the libraries that decide its results")):
    """Hybrid quantum-classical ML interatomic potentials with Qiskit variational-circuit readouts."""
app.add_typer(data_app, name="data")


@data_app.command("import-cp2k")
def import_cp2k_cmd(
    pos: Path = typer.Argument(..., help="CP2K positions trajectory (*-pos-*.xyz, plain or .gz), Å, E in Hartree"),
    frc: Path = typer.Argument(..., help="CP2K forces trajectory (*-frc-*.xyz, plain or .gz), same frames"),
    out: Path = typer.Option(..., "--out", "-o", help="output extxyz file (.gz to compress)"),
    cell: Optional[str] = typer.Option(None, help="cell lengths in Å: one (cubic) or three, e.g. 10.862 or 10,11,12"),
    cp2k_input: Optional[Path] = typer.Option(None, "--cp2k-input", help="read the cell from this CP2K input's &CELL"),
    force_unit: str = typer.Option("hartree/bohr", help="unit of the forces file: hartree/bohr (CP2K default), hartree/angstrom, ev/angstrom"),
    energy_unit: str = typer.Option("hartree", help="unit of the E = ... comment value: hartree or ev"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
):
    """Convert CP2K trajectory output to extxyz in eV and eV/Å, positions wrapped into the cell."""
    from .checkpoint import refuse_to_overwrite
    from .data.cp2k import import_cp2k, parse_cell_lengths, read_cp2k_cell
    from .data.dataset import write_structures

    try:
        if not overwrite:   # a dataset that runs were trained on must not change under them
            refuse_to_overwrite(out)
        if (cell is None) == (cp2k_input is None):
            raise HQCError("give exactly one of --cell or --cp2k-input")
        box = parse_cell_lengths(cell) if cell is not None else read_cp2k_cell(cp2k_input)
        frames = import_cp2k(pos, frc, box, force_unit=force_unit, energy_unit=energy_unit)
        write_structures(out, frames)
    except HQCError as exc:
        _fail(exc)
    console.print(f"wrote {len(frames)} frames ({len(frames[0])} atoms each) to {out}")


@data_app.command("split")
def split_cmd(
    file: Path = typer.Argument(..., help="labelled structures (any ASE-readable file)"),
    sizes: str = typer.Option("900,50,50", help="frames per part: train,val[,test]"),
    seed: int = typer.Option(0, help="random seed of the split"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace split files that exist"),
):
    """Write seeded train/val/test files next to FILE (<stem>.train.extxyz[.gz], ...)."""
    from .data.dataset import split_file

    try:
        parts = number_list(sizes, "--sizes", integer=True)
        for path in split_file(file, parts, seed, overwrite=overwrite):
            console.print(f"wrote {path}")
    except HQCError as exc:
        _fail(exc)


@data_app.command("merge")
def merge_cmd(
    files: List[Path] = typer.Argument(..., help="labelled structure files, in the order they are written"),
    out: Path = typer.Option(..., "--out", "-o", help="output extxyz file (.gz to compress)"),
    repeat: Optional[str] = typer.Option(None, help="times each file's frames are written, one count per file, "
                                         "e.g. 1,10 (oversample a few frames among many); default once each"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
):
    """Write the labelled frames of several files into one (stress labels kept), e.g. a training file with extra
    DFT single points."""
    from .checkpoint import refuse_to_overwrite
    from .data.dataset import merge_files, write_structures

    try:
        if not overwrite:
            refuse_to_overwrite(out)
        counts = None if repeat is None else number_list(repeat, "--repeat", integer=True, minimum=1)
        frames = merge_files(files, counts)
        write_structures(out, frames)
    except HQCError as exc:
        _fail(exc)
    stressed = sum("stress" in a.calc.results for a in frames)
    console.print(f"wrote {len(frames)} frames ({stressed} with a stress label) to {out}")


@data_app.command("scale")
def scale_cmd(
    file: Path = typer.Argument(..., help="structures (any ASE-readable file with a cell)"),
    out: Path = typer.Option(..., "--out", "-o", help="output extxyz file (.gz to compress)"),
    scales: Optional[str] = typer.Option(None, help="linear factors of cell and positions, e.g. 0.94,0.97,1.03,1.06 "
                                         "(0.97: density x 1.096)"),
    densities: Optional[str] = typer.Option(None, help="target densities in g/cm³ instead, e.g. 2.5,2.8"),
    frames: Optional[str] = typer.Option(None, help="frames of FILE, e.g. 0,1 (default: all)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
):
    """Copies of structures at other densities (isotropic scaling, labels dropped): inputs for DFT single points
    that label a model's equation of state, for `data merge` and a fine-tune with stress (docs/data.md)."""
    from .checkpoint import refuse_to_overwrite
    from .data.dataset import scale_frames, write_structures

    try:
        if not overwrite:
            refuse_to_overwrite(out)
        chosen = None if frames is None else number_list(frames, "--frames", integer=True)
        factors = None if scales is None else number_list(scales, "--scales")
        rho = None if densities is None else number_list(densities, "--densities")
        copies = scale_frames(file, chosen, factors, rho)
        write_structures(out, copies)
    except HQCError as exc:
        _fail(exc)
    shown = sorted({round(a.info["density_g_cm3"], 3) for a in copies})
    console.print(f"wrote {len(copies)} structures (densities {', '.join(f'{d:g}' for d in shown)} g/cm³, no labels) "
                  f"to {out}", highlight=False)


@data_app.command("pull-pair")
def pull_pair_cmd(
    file: Path = typer.Argument(..., help="structures (any ASE-readable file)"),
    out: Path = typer.Option(..., "--out", "-o", help="output extxyz file (.gz to compress)"),
    distances: str = typer.Option(..., help="distances (Å) to move each frame's closest pair to, e.g. 1.5,1.7"),
    frames: Optional[str] = typer.Option(None, help="frames of FILE, e.g. 0,1 (default: all)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
):
    """Copies of structures with their closest pair pulled together (labels dropped): inputs for DFT single points
    that teach a model the repulsion closer than its training data goes, for `data merge` and a fine-tune (docs/data.md)."""
    from .checkpoint import refuse_to_overwrite
    from .data.dataset import pull_pair_frames, write_structures

    try:
        if not overwrite:
            refuse_to_overwrite(out)
        chosen = None if frames is None else number_list(frames, "--frames", integer=True)
        copies = pull_pair_frames(file, chosen, number_list(distances, "--distances"))
        write_structures(out, copies)
    except HQCError as exc:
        _fail(exc)
    console.print(f"wrote {len(copies)} structures (closest pairs at {', '.join(f'{d:g}' for d in sorted({a.info['distance_A'] for a in copies}))} Å, "
                  f"no labels) to {out}", highlight=False)


@data_app.command("info")
def info_cmd(
    file: Path = typer.Argument(..., help="labelled structures (any ASE-readable file)"),
    energy_key: str = typer.Option("energy", help="name of the energy label"),
    forces_key: str = typer.Option("forces", help="name of the forces label"),
    stress_key: str = typer.Option("stress", help="name of the (optional) stress label"),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="structures only (e.g. an MD trajectory): geometry "
                                    "checks and summary without energy and force labels"),
    model: Optional[Path] = typer.Option(None, help="a trained model (run dir or checkpoint): also count the frames "
                                         "with a pair closer, or a density outside, what it was trained on"),
):
    """Validate a labelled file and print a summary (frames, elements, energy and force ranges, stress labels, closest atoms, density)."""
    import numpy as np

    from .coverage import REACH, coverage_of
    from .data.dataset import closest_pair, density_g_cm3, load_labelled, load_structures
    from .errors import MissingLabelError

    try:
        if unlabelled:
            frames = load_structures(file)
        else:
            frames = load_labelled(file, energy_key=energy_key, forces_key=forces_key, stress_key=stress_key)
    except MissingLabelError as exc:
        _fail(HQCError(f"{exc}; for structures without labels use --unlabelled"))
    except HQCError as exc:
        _fail(exc)
    pairs = [(pair[2], k, pair[0], pair[1]) for k, a in enumerate(frames) if (pair := closest_pair(a, REACH))]
    table = Table(title=str(file))
    table.add_column("quantity")
    table.add_column("value")
    table.add_row("frames", str(len(frames)))
    table.add_row("elements", ", ".join(sorted({s for a in frames for s in a.get_chemical_symbols()})))
    table.add_row("atoms per frame", f"{min(map(len, frames))}-{max(map(len, frames))}")
    if not unlabelled:
        e = np.array([a.get_potential_energy() / len(a) for a in frames])
        f = np.concatenate([a.get_forces().ravel() for a in frames])
        table.add_row("E per atom (eV)", f"mean {e.mean():.4f}, std {e.std() * 1000:.2f} meV")
        table.add_row("force component (eV/Å)", f"rms {np.sqrt(np.mean(f**2)):.3f}, max |F| {np.abs(f).max():.3f}")
    if pairs:
        d, k, i, j = min(pairs)
        table.add_row("closest atoms (Å)", f"{d:.3f} (frame {k}, atoms {i} and {j})")
    else:
        table.add_row("closest atoms (Å)", f"none within {REACH}")
    stressed = [] if unlabelled else [a.calc.results["stress"] for a in frames if "stress" in a.calc.results]
    if stressed:
        from .metrics import pressure_gpa

        pressure = pressure_gpa(stressed)
        table.add_row("stress labels", f"{len(stressed)} frames, pressure {pressure.min():.2f} to {pressure.max():.2f} GPa")
    periodic = [a for a in frames if a.pbc.all()]
    if periodic:
        rho = np.array([density_g_cm3(a) for a in periodic])
        table.add_row("density (g/cm³)", f"{rho.min():.4f}" if np.ptp(rho) < 1e-9 else f"{rho.min():.4f}-{rho.max():.4f}")
    if model is not None:
        try:
            coverage = coverage_of(model)
        except HQCError as exc:
            _fail(exc)
        _coverage_rows(table, frames, coverage)
    console.print(table)


def _coverage_rows(table: Table, frames: list, coverage: dict | None) -> None:
    """Rows of `data info --model`: the model's training coverage and the frames outside it."""
    from .coverage import describe, frames_outside

    table.add_row("model's training data", describe(coverage))
    if coverage is None:
        return
    out = frames_outside(frames, coverage)
    c = out["closest_below"]
    table.add_row("frames with a closer pair",
                  f"{out['frames_below_training']} of {out['frames']} (closest: frame {c['frame']}, {c['pair']} "
                  f"{c['distance_A']:.3f} Å < {c['training_A']:.3f})" if c else f"none of {out['frames']}")
    if out["frames_outside_densities"] is not None:
        table.add_row("frames outside its densities", f"{out['frames_outside_densities']} of {out['periodic_frames']}")


def _metrics_table(title: str, rows: dict[str, dict]) -> Table:
    table = Table(title=title)
    stress = any("rmse_stress_gpa" in m for m in rows.values())
    for col in ("set", "E RMSE (meV/atom)", "E RMSE offset-free (meV/atom)", "E MAE (meV/atom)", "F RMSE (eV/Å)", "F MAE (eV/Å)",
                *(("stress RMSE (GPa)", "P RMSE (GPa)") if stress else ())):
        table.add_column(col, justify="right")
    for name, m in rows.items():
        cells = [f"{m['rmse_e_mev_atom']:.3f}", f"{m['rmse_e_offset_free_mev_atom']:.3f}", f"{m['mae_e_mev_atom']:.3f}",
                 f"{m.get('rmse_f_ev_a', float('nan')):.4f}", f"{m.get('mae_f_ev_a', float('nan')):.4f}"]
        if stress:
            cells += [f"{m.get('rmse_stress_gpa', float('nan')):.3f}", f"{m.get('rmse_pressure_gpa', float('nan')):.3f}"]
        table.add_row(name, *cells)
    return table


@app.command()
def train(
    config: Path = typer.Argument(..., help="run configuration YAML (see docs/configuration.md)"),
    override: List[str] = typer.Option([], "--override", "-o", help="key.sub=value, YAML value; repeatable"),
    resume: bool = typer.Option(False, help="continue from <run_dir>/checkpoint.pt exactly where it stopped"),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="start over in a run directory that already holds a run (its checkpoints are replaced)"),
    restart_from_best: bool = typer.Option(
        False, "--restart-from-best", help="continue a run whose checkpoint.pt is lost from its best_model.pt: "
        "its weights, epoch and learning rate, a fresh optimizer (not exact; recorded in summary.json 'restarts')"),
    progress: bool = typer.Option(True, help="show progress bars"),
):
    """Train a potential; writes the run directory (config, metrics.csv, checkpoints, plots, summary)."""
    from .checkpoint import CHECKPOINT
    from .config import load_config
    from .train import Trainer

    cfg = None
    try:
        cfg = load_config(config, override)
        refuse_resume_with_overwrite(resume, overwrite)
        trainer = Trainer(cfg, resume=resume, progress=progress and sys.stderr.isatty(), overwrite=overwrite,
                          restart_from_best=restart_from_best)
        if trainer.dist.is_main:
            t = cfg.train
            passes = f" in passes of {t.micro_batch_size}" if t.pass_size < t.batch_size else ""
            console.print(f"run directory: {trainer.run_dir}  (train {len(trainer.graphs.train)}, val "
                          f"{len(trainer.graphs.val)}, test {len(trainer.graphs.test)} structures; batch {t.batch_size}"
                          f"{passes}; device {trainer.device})")
        summary = trainer.fit()
    except HQCError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        interrupted(None if cfg is None else Path(cfg.run_dir()) / CHECKPOINT)
    if trainer.dist.is_main:
        console.print(f"stopped after {summary['epochs']} epochs ({summary['stop_reason']}), "
                      f"{summary['train_seconds'] / 60:.1f} min")
        if "test" in summary:
            console.print(_metrics_table(f"{cfg.name}: test set (best EMA model)", {"test": summary["test"]}))


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="run directory or checkpoint file"),
    data: Path = typer.Option(..., "--data", "-d", help="labelled structures to evaluate on"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the metrics to this JSON file"),
    plot: Optional[Path] = typer.Option(None, help="parity plot PNG (default: <run>/parity_<data stem>.png for a run dir)"),
    energy_key: str = typer.Option("energy", help="name of the energy label"),
    forces_key: str = typer.Option("forces", help="name of the forces label"),
    stress_key: str = typer.Option("stress", help="name of the (optional) stress label, eV/Å³, Voigt or 3x3"),
    which: str = typer.Option("best", help="best (EMA, best validation) or last checkpoint"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """RMSE and MAE of E (meV/atom) and F (eV/Å) on a labelled file, with parity plots; stress (GPa) where labelled."""
    from .checkpoint import atomic_write_json
    from .evaluate import evaluate as run_eval

    if plot is None and run.is_dir():
        plot = run / f"parity_{data.name.split('.')[0]}_{'.'.join(data.name.split('.')[1:2])}.png"
    try:
        metrics = run_eval(run, data, energy_key, forces_key, device=device, plot=plot, which=which, stress_key=stress_key)
    except HQCError as exc:
        _fail(exc)
    console.print(_metrics_table(f"{run} on {data}", {data.name: metrics}))
    if plot is not None:
        console.print(f"parity plot: {plot}")
    if json_out is not None:
        atomic_write_json(metrics, json_out)
        console.print(f"metrics: {json_out}")


@app.command("predict")
def predict_cmd(
    runs: List[Path] = typer.Argument(..., help="run directory or checkpoint file; several: a committee (means and spread)"),
    data: Path = typer.Option(..., "--data", "-d", help="structures to label (any ASE-readable file; labels not needed)"),
    out: Path = typer.Option(..., "--out", help="extxyz to write (.gz to compress): the input's frames with the predictions"),
    prefix: str = typer.Option("hqc_", help="the predictions go to <prefix>energy (info, eV), <prefix>forces (arrays, eV/Å), <prefix>stress (info, eV/Å³)"),
    which: str = typer.Option("best", help="best (EMA, best validation) or last checkpoint"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    batch_size: int = typer.Option(10, min=1, help="structures per forward pass"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
    progress: bool = typer.Option(True, help="show a progress bar"),
):
    """Energies, forces and stresses of a trained model for every frame of a file, written beside the file's own data."""
    import numpy as np

    from .predict import predict_file

    try:
        with progress_bar("structures", None, progress) as bar:
            summary = predict_file(runs, data, out, prefix=prefix, which=which, device=device, batch_size=batch_size,
                                   overwrite=overwrite, progress=bar)
    except HQCError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        console.print(f"interrupted: {out} was not written")
        raise typer.Exit(130)
    keys = f"{summary['energy_key']} (eV), {summary['forces_key']} (eV/Å)"
    if summary["stress_key"]:
        keys += f", {summary['stress_key']} (eV/Å³, Voigt, periodic frames)"
    if "committee" in summary:
        energy_std, forces_dev, max_dev = summary["spread_keys"]
        keys = (f"committee of {summary['committee']} means: {keys}; spread: {energy_std} (eV), {forces_dev} "
                f"(eV/Å per atom), {max_dev} (eV/Å)")
    console.print(f"wrote {summary['frames']} frames ({summary['atoms']} atoms) to {out}: {keys}; "
                  f"{summary['seconds']:.1f} s on {summary['device']}", soft_wrap=True)
    if "committee" in summary:
        dev = np.asarray(summary["max_forces_dev"])
        console.print(f"largest force deviation per frame: median {np.median(dev):.3f}, max {dev.max():.3f} eV/Å "
                      f"(frame {int(dev.argmax())})")


from .cli_quantum import register as _register_quantum  # noqa: E402  (commands of the hardware path)

_register_quantum(app)
from .cli_sim import register as _register_sim  # noqa: E402  (md, mc, rdf)

_register_sim(app)
for _typer_app in (app, data_app):
    one_line_summaries(_typer_app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
