"""CLI commands that simulate with a trained potential: md, mc, rdf."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .autocorr import MIN_TAUS_FOR_TRUST
from .cli_common import (Allocation, DynamicalDecoupling, MaxQPUSeconds, Mitigation, NoiseScale, NoisyEngine, Profile,
                         ResilienceLevel, Twirling, console, interrupted, number_list, print_cap_check)
from .cli_common import fail as _fail
from .errors import HQCError
from .progress import progress_bar

DEFAULT_STRUCTURES = Path("data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz")
DEFAULT_HQC_RUN = Path("runs/study_readouts/small_hqc_cz_s0")
CHECKOUT = Path(__file__).resolve().parents[1]   # the repository of an editable install (where the defaults live)


def _shipped(path: Path, default: Path) -> Path:
    """The default data/run, found from any working directory: relative to the checkout when it is not in
    the current one (a path the user typed is taken as typed)."""
    if path == default and not path.exists() and (CHECKOUT / path).exists():
        return CHECKOUT / path
    return path


def _frame(structure: Path, index: int):
    from .data.dataset import read_structures

    structure = _shipped(structure, DEFAULT_STRUCTURES)
    frames = read_structures(structure)
    if not -len(frames) <= index < len(frames):
        raise HQCError(f"{structure}: frame {index} does not exist ({len(frames)} frames)")
    return frames[index]


def default_output(run_dir: Path, name: str) -> Path:
    """Where a simulation writes without --out: RUN_DIR/<name> for a run directory, <file stem>_<name> beside
    a checkpoint file (a file cannot hold a folder)."""
    run_dir = Path(run_dir)
    return run_dir / name if run_dir.is_dir() else run_dir.with_name(f"{run_dir.stem}_{name}")


def backend_tag(backend: str, shots: int) -> str:
    """A backend and its shots as part of a folder name (``aer-noise:fake_brisbane@x``, 1000 ->
    ``aer-noise-fake_brisbane-x_1000``); ``exact`` alone, since it has no shots."""
    return "exact" if backend == "exact" else f"{backend.replace(':', '-').replace('@', '-')}_{shots}"


def md_cmd(
    run_dir: Path = typer.Argument(..., help="run directory or checkpoint of a trained model"),
    structure: Path = typer.Option(DEFAULT_STRUCTURES, help="starting structure (any ASE-readable file)"),
    index: int = typer.Option(0, help="frame of the structure file"),
    steps: int = typer.Option(2000, help="MD steps"),
    ensemble: str = typer.Option("nvt", help="nvt, nve or npt (isotropic MTK barostat; uses the model's stress)"),
    thermostat: str = typer.Option("nose-hoover", help="NVT thermostat: nose-hoover (chain), langevin or bussi"),
    temperature: float = typer.Option(2000.0, help="K: NVT target, and the initial Maxwell-Boltzmann velocities"),
    timestep: float = typer.Option(0.5, help="fs"),
    tdamp: float = typer.Option(50.0, help="fs, Nose-Hoover / Bussi time constant"),
    friction: float = typer.Option(0.01, help="1/fs, Langevin friction"),
    pressure: float = typer.Option(0.0, help="GPa, NPT target pressure"),
    pdamp: float = typer.Option(500.0, help="fs, NPT barostat time constant"),
    seed: int = typer.Option(0, help="seed of the initial velocities and stochastic thermostats"),
    dtype: str = typer.Option("float64", help="precision of the model during MD: float64 (default, for energy conservation) or float32"),
    backend: str = typer.Option("exact", help="exact (the exact engine), or a simulator measuring forces by the "
                                "parameter-shift rule at every step: aer, aer-noise:<model>[@<profile>] (HQC models)"),
    shots: int = typer.Option(1000, min=2, help="shots per circuit (average) of every force evaluation (shot-based backends)"),
    allocation: Allocation = "uniform",
    profile: Profile = None,
    noise_scale: NoiseScale = 1.0,
    mitigation: Mitigation = "none",
    noisy_engine: NoisyEngine = "batched",
    compensate_noise: bool = typer.Option(False, "--compensate-noise", help="Langevin on measured forces: lower the "
                                          "thermostat's random force by the shot noise's share at every step"),
    log_every: int = typer.Option(10, help="steps between log rows"),
    traj_every: int = typer.Option(10, help="steps between trajectory frames"),
    checkpoint_every: int = typer.Option(100, help="steps between checkpoints"),
    committee: List[Path] = typer.Option([], help="another model (run dir or checkpoint) that watches the run; repeat "
                                         "for each: logs the committee's max force deviation and energy spread"),
    max_force_dev: Optional[float] = typer.Option(None, help="eV/Å: stop when the committee's largest force deviation exceeds it"),
    out: Optional[Path] = typer.Option(None, help="output folder (default RUN_DIR/md_<ensemble>_<T>K; for a checkpoint file <stem>_md_... beside it)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its checkpoint"),
    progress: bool = typer.Option(True, help="show a progress bar"),
):
    """Molecular dynamics with the trained potential: log, trajectory, energy drift, resume. Forces from the exact
    engine, or measured with shots on a simulator (--backend aer --shots 1000: shot-noise MD)."""
    from .calculator import HQCCalculator, HQCShotCalculator
    from .coverage import coverage_of
    from .md import CHECKPOINT, LOG, MDOptions, run_md
    from .plots import plot_md_log
    from .runlog import read_rows

    opt = MDOptions(steps=steps, ensemble=ensemble, thermostat=thermostat, temperature=temperature, timestep=timestep,
                    tdamp=tdamp, friction=friction, pressure=pressure, pdamp=pdamp, seed=seed, log_every=log_every,
                    traj_every=traj_every, checkpoint_every=checkpoint_every,
                    committee=[str(p) for p in committee], max_force_dev=max_force_dev, compensate_noise=compensate_noise)
    tag = "" if backend == "exact" else f"_{backend_tag(backend, shots)}"
    out = out or default_output(run_dir, f"md_{ensemble}_{temperature:g}K{tag}")
    try:
        opt.validate()
        if backend.startswith(("fake_", "ibm_")):
            raise HQCError(f"md measures 17x an energy's circuits at every step; on {backend} that is a job per step "
                           "(see `hqc-qiskit energy --forces --dry-run`): run shot-based MD on aer or "
                           "aer-noise:<device snapshot>, and Monte Carlo (`hqc-qiskit mc`) on devices")
        if backend == "exact":
            calc = HQCCalculator(run_dir, dtype=dtype)
        else:
            from .quantum.backends import make_backend

            calc = HQCShotCalculator(run_dir, backend=make_backend(backend, profile, noise_scale, mitigation,
                                                                   engine=noisy_engine),
                                     # a stream of its own: default_rng(seed) drives the thermostat's noise
                                     shots=shots, allocation=allocation, seed=[seed, 1], force_uncertainty=False)
        members = [HQCCalculator(p, dtype=dtype) for p in committee]
        atoms = _frame(structure, index)
        coverage = coverage_of(run_dir)
        with progress_bar("MD steps", steps, progress) as bar:
            summary = run_md(atoms, calc, opt, out, resume=resume, progress=bar, committee=members, coverage=coverage)
    except (HQCError, ValueError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        interrupted(out / CHECKPOINT)
    plot_md_log(read_rows(out / LOG), out / "md_log.png", summary["n_atoms"])
    status = "stable" if summary["stable"] else f"[red]stopped: {summary['unstable_reason']}[/]"
    console.print(f"{summary['steps']} steps ({summary['time_ps']:.3f} ps), {status}; "
                  f"T = {summary['mean_T_K']:.0f} ± {summary['std_T_K']:.0f} K; "
                  f"drift of the conserved energy {summary['drift_conserved_mev_per_atom_ps']:+.3f} meV/atom/ps")
    for name, label in (("E_pot_eV_per_atom", "E_pot"), ("E_pot_exact_eV_per_atom", "exact E_pot")):
        _print_average(label, summary["averages"].get(name))
    if "mean_density_g_cm3" in summary:
        rho, pressure = summary["averages"].get("density_g_cm3"), summary["averages"].get("P_GPa")
        if rho and pressure:
            rough = "" if rho["trusted"] else f"; fewer than {MIN_TAUS_FOR_TRUST:.0f} independent samples: a rough error, run longer"
            console.print(f"mean density {rho['mean']:.4f} ± {rho['stderr']:.4f} g/cm³ (fluctuating by {rho['std']:.4f}), "
                          f"pressure {pressure['mean']:+.2f} ± {pressure['stderr']:.2f} GPa over the last 80% of the log; "
                          f"autocorrelation time of the density {rho['tau_steps']:.3g} steps{rough}")
        else:   # too short or unstable a run for error bars
            console.print(f"density {summary['mean_density_g_cm3']:.4f} g/cm³ (fluctuating by {summary['std_density_g_cm3']:.4f}), "
                          f"pressure {summary['mean_P_GPa']:+.2f} GPa (means over the last 80% of the log)")
    _print_error_bar_check(summary)
    if "force_noise_rms_eV_A" in summary:
        p = summary["predicted"]
        walk = p["energy_walk_mev_per_atom_sqrt_ps"] * summary["time_ps"] ** 0.5
        console.print(f"shot noise of the forces {summary['force_noise_rms_eV_A']:.3f} eV/Å RMS per component: heats "
                      f"by {p['heating_mev_per_atom_ps']:.3g} meV/atom/ps (the heat a thermostat has to remove)"
                      + (f", Langevin T shift +{p['langevin_T_shift_K']:.1f} K" if "langevin_T_shift_K" in p else "")
                      + (f"; drift of the exact total energy {summary['drift_exact_total_mev_per_atom_ps']:+.3f} "
                         f"meV/atom/ps, on top of a random walk of about ±{walk:.2g} meV/atom over the run"
                         if ensemble == "nve" else ""))
    if "mean_T_thermostat_K" in summary:
        console.print(f"noise compensation: the thermostat ran at {summary['mean_T_thermostat_K']:.0f} K on average "
                      f"so that thermostat + shot noise make {temperature:g} K")
    _print_closest_pair(summary, calc.model.config.pair_repulsion)
    if "max_force_dev_max_eV_A" in summary:
        console.print(f"committee of {len(committee) + 1}: largest force deviation median "
                      f"{summary['max_force_dev_median_eV_A']:.3f}, max {summary['max_force_dev_max_eV_A']:.3f} eV/Å")
    console.print(f"outputs in {out}: md_log.csv, md_traj.extxyz, md_log.png, md_summary.json, md_checkpoint.json")


def _print_closest_pair(summary: dict, pair_repulsion: str | None) -> None:
    """The MD run's closest pair against the model's training data (yellow when the run went closer); the advice
    depends on whether the model has a pair repulsion (``model.pair_repulsion``)."""
    if "min_pair_A" not in summary:
        return
    line = f"closest pair {summary['min_pair_A']:.2f} Å (step {summary['min_pair_step']})"
    if "rows_below_training" not in summary:
        console.print(line + "; the model's training data is unknown here (no training coverage)")
        return
    floors = ", ".join(f"{pair} {d:.2f} Å" for pair, d in summary["training_coverage"]["closest_pair_A"].items())
    if summary["rows_below_training"]:
        console.print(f"[yellow]{line}: closer than any pair of the training data ({floors}) in "
                      f"{summary['rows_below_training']} of {summary['rows']} log rows, first at step "
                      f"{summary['first_step_below_training']}; "
                      + (f"the model's {pair_repulsion} term repels there, but its learned part is extrapolated "
                         "(DFT frames with such pairs, `hqc-qiskit data pull-pair`, would teach it)[/]" if pair_repulsion else
                         "the model's short-range repulsion is extrapolated there (model.pair_repulsion: zbl, or DFT "
                         "frames with such pairs from `hqc-qiskit data pull-pair`, makes it physical)[/]"))
    else:
        console.print(f"{line}, never closer than the training data's ({floors})")


def _print_samples_outside(summary: dict) -> None:
    """The MC chain's saved samples against the model's training data (yellow when some held a closer pair)."""
    out = summary.get("samples_outside_training")
    if out is None:
        return
    if out.get("frames_outside_densities"):   # an isobaric chain's volume moves (or a start) away from the data
        lo, hi = summary["training_coverage"]["density_g_cm3"]
        console.print(f"[yellow]{out['frames_outside_densities']} of {out['periodic_frames']} saved samples lie outside "
                      f"the training densities ({lo:.3f}-{hi:.3f} g/cm³): the model's equation of state is extrapolated "
                      "there[/]")
    c = out["closest_below"]
    if c is None:
        console.print(f"no saved sample closer than the training data's closest pair (of {out['frames']})")
        return
    console.print(f"[yellow]{out['frames_below_training']} of {out['frames']} saved samples hold a pair closer than any "
                  f"of the training data (closest: {c['pair']} {c['distance_A']:.3f} Å < {c['training_A']:.3f}); the "
                  "model's short-range repulsion is extrapolated there[/]")


def _print_error_bar_check(summary: dict) -> None:
    """Yellow lines for the averages whose error bar batch means put at more than SUSPECT_RATIO x (autocorr.py)."""
    for name, check in summary.get("error_bar_check", {}).items():
        if check["suspect"]:
            console.print(f"[yellow]{name}: batch means over {check['blocks']} blocks give ± {check['stderr']:.3g}, "
                          f"{check['ratio']:.1f}x the error bar above: the series is correlated beyond the "
                          "autocorrelation window (an oscillation, e.g. the barostat's volume); quote the larger "
                          "(docs/simulation.md, \"Error bars of averages\")[/]")


def _rough(stats: dict) -> str:
    """What an average's line adds when its chain is too short to trust its autocorrelation time."""
    return "" if stats["trusted"] else f" (fewer than {MIN_TAUS_FOR_TRUST:.0f}: a rough error; run longer)"


def _print_average(label: str, stats: dict | None) -> None:
    """One line: a per-atom energy's mean over the run with its autocorrelation-corrected error (autocorr.py)."""
    if stats is None:
        return
    console.print(f"mean {label} {stats['mean']:.5f} eV/atom ± {1e3 * stats['stderr']:.2f} meV/atom; autocorrelation time "
                  f"{stats['tau_steps']:.3g} steps, {stats['n_effective']:.0f} independent samples{_rough(stats)}")


def mc_cmd(
    run_dir: Path = typer.Argument(DEFAULT_HQC_RUN, help="run directory of a trained model (default: the shipped small HQC-cz)"),
    backend: str = typer.Option("exact", help="exact, aer, aer-noise:<model>[@<profile>], fake_<device>, ibm_<device>"),
    shots: int = typer.Option(50000, help="shots per circuit (average) for every energy"),
    structure: Path = typer.Option(DEFAULT_STRUCTURES, help="starting structure (any ASE-readable file)"),
    index: int = typer.Option(0, help="frame of the structure file"),
    steps: int = typer.Option(1000, help="MC steps"),
    temperature: float = typer.Option(2000.0, help="K"),
    n_moved: int = typer.Option(5, help="atoms displaced per move"),
    delta: float = typer.Option(0.015, help="Å, standard deviation of each displacement component"),
    adapt_steps: int = typer.Option(0, min=0, help="adapt delta towards --target-acceptance during the first N steps (0: fixed delta)"),
    target_acceptance: float = typer.Option(0.5, help="acceptance ratio the adaptation aims for, as a fraction of the ratio the energies' noise alone allows (see --absolute-target)"),
    noise_scaled_target: bool = typer.Option(True, "--noise-scaled-target/--absolute-target", help="with noisy energies, aim for --target-acceptance x the acceptance of a move that changes nothing (keeps about an exact chain's step sizes), or for --target-acceptance itself"),
    acceptance: str = typer.Option("penalty", help="penalty (Ceperley-Dewing, unbiased with noisy energies) or plain (the paper)"),
    remeasure: bool = typer.Option(False, "--remeasure", help="measure the current state again every step instead of reusing its energy"),
    ensemble: str = typer.Option("nvt", help="nvt (fixed cell, the paper) or npt (isotropic volume moves too: the density at --pressure)"),
    pressure: float = typer.Option(0.0, help="GPa, npt"),
    volume_probability: float = typer.Option(0.1, help="npt: fraction of the steps that are volume moves"),
    max_dlnv: float = typer.Option(0.01, help="npt: largest change of ln V per volume move (adapted with --adapt-steps)"),
    allocation: Allocation = "uniform",
    profile: Profile = None,
    noise_scale: NoiseScale = 1.0,
    mitigation: Mitigation = "none",
    resilience_level: ResilienceLevel = None,
    dd: DynamicalDecoupling = False,
    twirling: Twirling = False,
    max_qpu_seconds: MaxQPUSeconds = None,
    seed: int = typer.Option(0, help="seed of moves, acceptance and simulated shot noise"),
    sample_every: int = typer.Option(10, help="steps between saved configurations"),
    checkpoint_every: Optional[int] = typer.Option(None, help="steps between checkpoints (default 10; 1 on runtime backends)"),
    out: Optional[Path] = typer.Option(None, help="output folder (default RUN_DIR/mc_<backend>_<shots>_<acceptance>; for a checkpoint file <stem>_mc_... beside it)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its checkpoint"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print what the run would cost (circuits, shots, QPU time) and exit"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    noisy_engine: NoisyEngine = "batched",
):
    """Metropolis Monte Carlo at T with energies from any backend (shot noise handled by the penalty method)."""
    from .checkpoint import load_model
    from .coverage import coverage_of
    from .mc_driver import CHECKPOINT, LOG, MCOptions, mc_cost, run_mc
    from .plots import plot_mc_log
    from .quantum.backends import RuntimeOptions, make_backend
    from .runlog import read_rows

    run_dir = _shipped(run_dir, DEFAULT_HQC_RUN)
    runtime_backend = backend.startswith(("fake_", "ibm_"))
    isobaric = f"_npt{pressure:g}GPa" if ensemble == "npt" else ""
    out = out or default_output(run_dir, f"mc_{backend_tag(backend, shots)}_{acceptance}{isobaric}")
    opt = MCOptions(steps, temperature, n_moved, delta, adapt_steps, target_acceptance, acceptance, remeasure, shots,
                    allocation, seed, sample_every, checkpoint_every or (1 if runtime_backend else 10), ensemble,
                    pressure, volume_probability, max_dlnv, noise_scaled_target)
    try:
        opt.validate()
        runtime = RuntimeOptions(dynamical_decoupling=dd, twirling=twirling, resilience_level=resilience_level,
                                 max_qpu_seconds=max_qpu_seconds,
                                 journal=str(out / "jobs") if runtime_backend else None)
        b = None if backend == "exact" else make_backend(backend, profile, noise_scale, mitigation, runtime, noisy_engine)
        model = load_model(run_dir).double()
        atoms = _frame(structure, index)
        if dry_run:
            if b is None:
                console.print("backend exact: no circuits are run, nothing to cost")
                return
            cost = mc_cost(model, atoms, b, opt)
            for key, value in cost.items():
                console.print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
            print_cap_check(cost["qpu_seconds_per_energy"], max_qpu_seconds)
            console.print("dry run: nothing was submitted")
            return
        if runtime_backend:
            b.device   # connect now: a missing IBM account fails before any work or output
        with progress_bar("MC steps", steps, progress) as bar:
            summary = run_mc(model, atoms, b, opt, out, resume=resume, progress=bar, coverage=coverage_of(run_dir))
    except (HQCError, ValueError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        interrupted(out / CHECKPOINT)
    plot_mc_log(read_rows(out / LOG), out / "mc_log.png", summary["n_atoms"])
    ceiling = summary.get("noise_acceptance_ceiling", 1.0)
    allows = f" (the noise alone allows {ceiling:.3f})" if ceiling < 1 else ""
    console.print(f"{summary['steps']} steps, acceptance {summary['acceptance_ratio']:.3f}{allows}, final delta "
                  f"{summary['final_delta_A']:.4f} Å; shots {summary['shots_total']:.3g}, QPU {summary['qpu_seconds_total']:.1f} s")
    avg = summary["averages"]
    if ensemble == "npt":
        console.print(f"volume moves: {summary['volume_moves']}, acceptance {summary['volume_acceptance_ratio']:.3f}, "
                      f"final max_dlnv {summary['final_max_dlnv']:.4f}")
        rho = avg.get("density_g_cm3")
        if rho is not None:
            console.print(f"mean density {rho['mean']:.4f} ± {rho['stderr']:.4f} g/cm³ at {pressure:g} GPa; autocorrelation "
                          f"time {rho['tau_steps']:.3g} steps, {rho['n_effective']:.0f} independent samples{_rough(rho)}")
    if "energy_eV_per_atom" in avg:
        how = "" if backend == "exact" else (" (fresh estimates of each step's starting state: unbiased)" if remeasure
                                             else " (reused estimates + s²/kT: unbiased)")
        _print_average("energy" + how, avg["energy_eV_per_atom"])
    if "energy_measured_eV_per_atom" in avg:
        _print_average("energy as measured" + ("" if "energy_eV_per_atom" in avg else
                                               " (selected low by the acceptance; for <E> evaluate the trajectory's "
                                               "frames with the exact engine)"), avg["energy_measured_eV_per_atom"])
    _print_error_bar_check(summary)
    _print_samples_outside(summary)
    acc = summary["acceptance_ratio"] / ceiling   # of what the moves can reach with this noise
    if summary["steps"] >= 100 and not adapt_steps and not 0.15 <= acc <= 0.8:
        # a step far from ~50% acceptance decorrelates slowly (docs/results.md, "Sampling cost: MD or MC on a QPU")
        of_ceiling = f", {acc:.2f} of what the noise allows" if ceiling < 1 else ""
        console.print(f"[yellow]acceptance {summary['acceptance_ratio']:.2f}{of_ceiling}: the moves are too "
                      f"{'small' if acc > 0.8 else 'large'} for "
                      f"{temperature:g} K, so the chain forgets slowly; --adapt-steps N tunes --delta towards "
                      f"--target-acceptance during the first N steps[/]")
    console.print(f"outputs in {out}: mc_log.csv, mc_traj.extxyz, mc_log.png, mc_summary.json, mc_checkpoint.json")


def rdf_cmd(
    traj: Path = typer.Argument(..., help="trajectory (extxyz from md/mc, or any ASE-readable file)"),
    ref: Optional[Path] = typer.Option(None, help="reference frames to compare with (e.g. the DFT data)"),
    skip: float = typer.Option(0.2, help="fraction of the trajectory's first frames to discard (equilibration)"),
    r_max: float = typer.Option(6.0, help="Å"),
    n_bins: int = typer.Option(120, min=1, help="histogram bins"),
    blocks: int = typer.Option(5, min=1, help="blocks for the error bars"),
    label: str = typer.Option("", help="legend label (default: the file name)"),
    out: Optional[Path] = typer.Option(None, help="output prefix (default: TRAJ without extension + _rdf): .json and .png"),
):
    """Radial distribution function with block-averaged error bars, compared with a reference if given."""
    from .checkpoint import atomic_write_json
    from .data.dataset import read_structures
    from .plots import plot_rdf
    from .rdf import compare_rdf, compute_rdf, first_peak

    if not 0 <= skip < 1:
        _fail(HQCError("--skip must lie in [0, 1)"))
    try:
        frames = read_structures(traj)
        frames = frames[int(skip * len(frames)):]
        curves = {label or traj.name: compute_rdf(frames, r_max, n_bins, blocks)}
        if ref is not None:
            curves[f"reference: {ref.name}"] = compute_rdf(read_structures(ref), r_max, n_bins, blocks)
    except (HQCError, ValueError) as exc:
        _fail(exc)
    prefix = out or traj.with_name(traj.name.split(".")[0] + "_rdf")
    rdfs = list(curves.values())
    result = {"trajectory": str(traj), "frames": rdfs[0].n_frames, "rdf": rdfs[0].as_dict()}
    r1, g1 = first_peak(rdfs[0])
    console.print(f"{rdfs[0].n_frames} frames; first peak at {r1:.3f} Å, height {g1:.3f}")
    if ref is not None:
        result.update(reference=str(ref), reference_rdf=rdfs[1].as_dict(), comparison=compare_rdf(rdfs[0], rdfs[1]))
        c = result["comparison"]
        console.print(f"reference: first peak at {c['ref_first_peak_r']:.3f} Å, height {c['ref_first_peak_g']:.3f}; "
                      f"shift {c['first_peak_shift']:+.3f} Å, height diff {c['first_peak_height_diff']:+.3f}, "
                      f"integrated squared difference {c['integrated_sq_diff']:.4f} Å")
    atomic_write_json(result, f"{prefix}.json")
    plot_rdf(curves, f"{prefix}.png", title=f"g(r), {rdfs[0].n_frames} frames")
    console.print(f"written: {prefix}.json, {prefix}.png")


def mc_study_cmd(
    run_dir: Path = typer.Argument(DEFAULT_HQC_RUN, help="HQC run directory"),
    structure: Path = typer.Option(DEFAULT_STRUCTURES, help="starting structure"),
    index: int = typer.Option(0, help="frame of the structure file"),
    shots: str = typer.Option("2000,10000,50000", help="comma-separated shots per circuit"),
    steps: int = typer.Option(1500, help="MC steps per chain"),
    temperature: float = typer.Option(2000.0, help="K"),
    n_moved: int = typer.Option(5, help="atoms displaced per move"),
    delta: float = typer.Option(0.1, help="Å (fixed, the same for every chain)"),
    remeasure: bool = typer.Option(True, help="measure both energies afresh every step (the setting where plain Metropolis is biased)"),
    seed: int = typer.Option(0, help="seed of every chain (the floor chain uses seed + 1)"),
    sample_every: int = typer.Option(5, help="steps between samples for g(r)"),
    out: Path = typer.Option(Path("runs/simulation/mc_study"), help="output folder: one subfolder per chain, mc_study.json/.md/.png"),
):
    """Plain vs penalty acceptance with shot-noisy (aer) energies: g(r) distance to the exact-energy chain vs shots."""
    from .checkpoint import atomic_write_json, load_model
    from .mc_driver import MCOptions
    from .plots import plot_mc_study, plot_rdf
    from .quantum.backends import make_backend
    from .sim_studies import describe_shots_study, mc_shots_study

    base = MCOptions(steps=steps, temperature=temperature, n_moved=n_moved, delta=delta, remeasure=remeasure,
                     seed=seed, sample_every=sample_every)
    try:
        base.validate()
        model = load_model(_shipped(run_dir, DEFAULT_HQC_RUN)).double()
        atoms = _frame(structure, index)
        shot_counts = number_list(shots, "--shots", integer=True, minimum=2)
        console.print(f"{2 + 2 * len(shot_counts)} chains of {steps} steps into {out} (resumable)")
        study = mc_shots_study(model, atoms, make_backend, shot_counts, base, out,
                               progress=lambda label: (console.print(f"chain {label}") and None))
    except (HQCError, ValueError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        interrupted(out, "run the same command to continue (finished chains are kept, the others resume)")
    result = study["result"]
    atomic_write_json(result, out / "mc_study.json")
    plot_mc_study(result, out / "mc_study.png")
    plot_rdf(study["rdfs"], out / "mc_study_rdf.png", title="MC g(r): exact vs shot-noisy energies")
    from .cli_quantum import _print_rows

    _print_rows(result["rows"], ["label", "shots", "acceptance_ratio", "integrated_sq_diff", "first_peak_shift",
                                 "mean_exact_epot_mev_per_atom", "mean_exact_epot_stderr"], out / "mc_study.md")
    for line in describe_shots_study(result):
        console.print(line)


def register(app: typer.Typer) -> None:
    app.command("mc-study")(mc_study_cmd)
    app.command("md")(md_cmd)
    app.command("mc")(mc_cmd)
    app.command("rdf")(rdf_cmd)
