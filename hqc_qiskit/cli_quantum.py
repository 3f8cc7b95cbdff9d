"""CLI commands of the hardware path: transpile, backends, energy, noise-study, shots-study, noise-aware, noise-calibrate,
noise-snapshot."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from .cli_common import (Allocation, DynamicalDecoupling, MaxQPUSeconds, Mitigation, NoiseScale, NoisyEngine, Overwrite, Profile,
                         ResilienceLevel, Twirling, console, interrupted, number_list, print_cap_check,
                         refuse_resume_with_overwrite)
from .cli_common import fail as _fail
from .errors import HQCError



def transpile_cmd(
    profile: str = typer.Option("ibm_eagle", help="transpile profile name (transpile_profiles/) or YAML path"),
    ansatz: str = typer.Option("all", help="ansatz name or 'all'"),
    n_qubits: int = typer.Option(8, help="input qubits"),
    n_layers: int = typer.Option(3, help="variational layers"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the table as JSON here"),
    plot: Optional[Path] = typer.Option(None, help="bar plot (PNG) of two-qubit gates, depth and success probability"),
):
    """Compile the readout ansaetze for a device and compare them side by side."""
    from .quantum.circuits import ansatz_names
    from .quantum.transpile import transpile_readout

    try:
        names = ansatz_names() if ansatz == "all" else [ansatz]
        rows = [transpile_readout(a, profile, n_qubits, n_layers).metrics() for a in names]
    except (HQCError, ValueError) as exc:
        _fail(exc)
    table = Table(title=f"readout circuits compiled with profile {rows[0]['profile']}")
    cols = ["ansatz", "two_qubit_gates", "depth", "two_qubit_depth", "swaps", "qubits_used", "idle_fidelity",
            "success_probability"]
    for c in cols:
        table.add_column(c.replace("_", " "), justify="right")
    for r in rows:
        sp = r["success_probability"]
        table.add_row(*[str(r[c]) for c in cols[:-2]], f"{r['idle_fidelity']:.3f}",
                      "n/a (no calibration)" if sp is None else f"{sp:.3f}")
    console.print(table)
    if json_out:
        from .checkpoint import atomic_write_json

        atomic_write_json(rows, json_out)
    if plot:
        from .plots import plot_transpile

        plot_transpile(rows, plot)
        console.print(f"plot: {plot}")


def backends_cmd():
    """List the execution backends available here, and why others are not."""
    from .quantum.devices import fake_device_names
    from .quantum.noise import noise_model_names
    from .quantum.profiles import profile_names

    table = Table(title="backends")
    table.add_column("name")
    table.add_column("available")
    table.add_column("notes")
    table.add_row("exact", "yes", "exact engine, no shot noise (training engine)")
    table.add_row("aer", "yes", "ideal circuits, shots (exact distributions; --noisy-engine aer: Aer statevector)")
    table.add_row("aer-noise:<model>[@<profile>]", "yes", "Aer noise model on the active qubits, batched density matrices; "
                  f"models: {', '.join(noise_model_names())}; profiles: {', '.join(profile_names())}")
    table.add_row("fake_<device>", "yes", f"runtime local mode, {len(fake_device_names())} snapshots (e.g. fake_brisbane, fake_torino)")
    status, note = _ibm_status()
    table.add_row("ibm_<device>", status, note)
    console.print(table)


def _ibm_status() -> tuple[str, str]:
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService

        service = QiskitRuntimeService()
    except Exception as exc:  # noqa: BLE001
        return "no", f"no saved IBM Quantum account ({type(exc).__name__}); see docs/hardware.md"
    try:
        names = [b.name for b in service.backends()]
    except Exception as exc:  # noqa: BLE001
        return "account saved", f"could not list devices ({type(exc).__name__}: network?)"
    return "yes", ", ".join(names)


def energy_cmd(
    run_dir: Path = typer.Argument(..., help="run directory or checkpoint of an HQC model"),
    structure: Path = typer.Option(..., help="structure file (any ASE-readable; first frame unless --index)"),
    index: int = typer.Option(0, help="frame of the structure file"),
    backend: str = typer.Option("aer", help="exact, aer, aer-noise:<model>[@<profile>], fake_<device>, ibm_<device>"),
    shots: int = typer.Option(50000, help="shots per circuit (average; total = shots x circuits)"),
    allocation: Allocation = "uniform",
    profile: Profile = None,
    noise_scale: NoiseScale = 1.0,
    mitigation: Mitigation = "none",
    resilience_level: ResilienceLevel = None,
    dry_run: bool = typer.Option(False, "--dry-run", help="print circuits, shots and estimated QPU time; submit nothing"),
    max_qpu_seconds: MaxQPUSeconds = None,
    dd: DynamicalDecoupling = False,
    twirling: Twirling = False,
    journal: Optional[Path] = typer.Option(None, help="runtime backends: keep finished jobs' counts here (resume)"),
    seed: Optional[int] = typer.Option(None, help="seed of the simulated shot noise"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the result as JSON"),
    noisy_engine: NoisyEngine = "batched",
    forces: bool = typer.Option(False, "--forces", help="also measure the forces (parameter shift: 1 + 2n times "
                                "the circuits)"),
    stress: bool = typer.Option(False, "--stress", help="also measure the stress (periodic structures; implies --forces)"),
):
    """Shot-based energy of one structure (eV) with its standard error, on any backend; with --forces
    [--stress] also the forces (eV/Å) and stress (GPa) and theirs, by the parameter-shift rule."""
    from .checkpoint import atomic_write_json, load_model
    from .data.dataset import read_structures
    from .quantum.backends import RuntimeOptions, make_backend
    from .quantum.estimate import estimate_energy, readout_problem, shots_per_circuit
    from .quantum.shot_forces import estimate_forces, force_problem, force_shots

    try:
        model = load_model(run_dir).double()
        frames = read_structures(structure)
        if not 0 <= index < len(frames):
            raise HQCError(f"{structure}: frame {index} does not exist ({len(frames)} frames)")
        atoms = frames[index]
        runtime = RuntimeOptions(dynamical_decoupling=dd, twirling=twirling, resilience_level=resilience_level,
                                 max_qpu_seconds=max_qpu_seconds, journal=str(journal) if journal else None, seed=seed)
        b = make_backend(backend, profile, noise_scale, mitigation, runtime, noisy_engine)
        with_forces = forces or stress
        if with_forces:   # the Jacobian only when it sets the shots (optimal) or after a dry run
            fp = force_problem(model, atoms, stress, uncertainty=not dry_run or allocation == "optimal")
            batch, per_circuit = fp.combined, force_shots(fp, shots, allocation)
        else:
            problem = readout_problem(model, atoms)
            batch, per_circuit = problem.batch, shots_per_circuit(problem, shots, allocation)
        if backend.startswith("fake_") and not dry_run:
            _suggest_reduced_simulation(backend, len(batch), b.profile, with_forces)
        if dry_run:
            cost = b.cost(batch, per_circuit)
            for key, value in cost.items():
                console.print(f"{key:>22}: {value}")
            print_cap_check(cost["qpu_seconds"], max_qpu_seconds)
            console.print("dry run: nothing was submitted")
            return
        rng = np.random.default_rng(seed)
        est = (estimate_forces(model, atoms, b, shots, allocation, rng, stress, problem=fp) if with_forces
               else estimate_energy(model, atoms, b, shots, allocation, rng, problem))
    except (HQCError, ValueError) as exc:
        _fail(exc)
    except KeyboardInterrupt:   # with --journal, finished jobs are kept and not submitted again
        interrupted(journal, "run the same command to continue (finished jobs are not submitted again)")
    n = est.n_atoms
    console.print(f"E = {est.energy:.6f} ± {est.stderr:.6f} eV  ({est.energy / n * 1000:.3f} ± {est.stderr / n * 1000:.3f} meV/atom)")
    readout = model.config.readout
    reference = (f"model on its noisy readouts ({readout.noise_backend} x{readout.noise_scale:g})"
                 if readout.engine == "noisy" else "exact engine")
    console.print(f"{reference}: {est.exact_energy:.6f} eV; difference {(est.energy - est.exact_energy) / n * 1000:+.3f} meV/atom")
    if with_forces:
        _print_forces(est, reference)
    console.print(f"{est.circuits} circuits, {est.shots} shots ({allocation}), backend {est.backend}")
    if json_out:
        atomic_write_json(est.as_dict(), json_out)


def _suggest_reduced_simulation(backend: str, circuits: int, profile: str, with_forces: bool) -> None:
    """Local mode simulates each circuit with the whole device's noise model on the qubits the profile's circuits
    touch: slow for the 1 + 2n times larger force batch, and far slower on a whole-chip profile, whose routing
    adds qubits (12 instead of 8 for the 8-qubit cz readout on Eagle, so 16x larger density matrices: 96 circuits
    took 14 s with ibm_eagle_compact and did not finish in 15 min with ibm_eagle; docs/results.md "Calibrating the
    noise scale")."""
    from .quantum.noise import noise_model_names
    from .quantum.profiles import load_profile, profile_names

    hints = []
    current = load_profile(profile)
    if current.region != "compact":
        compact = [p.name for p in map(load_profile, profile_names()) if p.target == current.target and p.region == "compact"]
        if compact:
            hints.append(f"--profile {compact[0]} compiles onto as many qubits as the circuit has, much faster here")
    if with_forces and backend in noise_model_names():
        hints.append(f"aer-noise:{backend} simulates the same noise model on the active qubits, faster still")
    if with_forces or hints:
        console.print(f"[yellow]{backend}: the runtime's local mode simulates each of the {circuits} circuits with the "
                      f"whole device's noise model (minutes per hundred circuits){'; ' if hints else ''}"
                      f"{'; '.join(hints)}[/]")


def _print_forces(est, reference: str = "exact engine") -> None:
    """Forces and stress of a ForceEstimate against the model's own (``reference``, the exact engine unless its
    readouts are noisy): RMS difference and typical standard error."""
    from ase.stress import full_3x3_to_voigt_6_stress
    from ase.units import GPa

    def gpa(matrix, sign="+"):   # xx yy zz yz xz xy
        return " ".join(f"{v / GPa:{sign}.3f}" for v in full_3x3_to_voigt_6_stress(matrix))

    diff = np.sqrt(np.mean((est.forces - est.exact_forces) ** 2))
    console.print(f"forces: RMS difference to the {reference} {diff:.4f} eV/Å over {est.n_atoms} atoms; "
                  f"median standard error {np.median(est.forces_stderr):.4f} eV/Å")
    if est.stress is not None:
        console.print(f"stress (GPa, xx yy zz yz xz xy): {gpa(est.stress)}  ± {gpa(est.stress_stderr, '')}")
        console.print(f"{reference} stress (GPa): {gpa(est.exact_stress)}")


# the inputs both studies take
StudyRun = Annotated[Path, typer.Argument(help="HQC run directory")]
StudyStructures = Annotated[Path, typer.Option(help="test structures")]
StudyCount = Annotated[int, typer.Option(min=1, help="how many structures of the file (the first N)")]


def _load_study_inputs(run_dir: Path, structures: Path, n_structures: int):
    from .checkpoint import load_model
    from .data.dataset import read_structures

    model = load_model(run_dir).double()
    frames = read_structures(structures)
    if n_structures > len(frames):
        raise HQCError(f"--n-structures {n_structures}: {structures} has {len(frames)} frames")
    return model, frames[:n_structures]


def noise_study_cmd(
    run_dir: StudyRun,
    structures: StudyStructures = Path("data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz"),
    n_structures: StudyCount = 3,
    noise: str = typer.Option("depolarizing", help="noise model (noise_models/)"),
    profiles: str = typer.Option("ideal", help="comma-separated transpile profiles"),
    scales: str = typer.Option("0.1,0.3,1", help="comma-separated noise scales"),
    mitigations: str = typer.Option("none,rem,zne,zne+rem", help="comma-separated mitigations"),
    shots: Optional[int] = typer.Option(None, min=2, help="shots per circuit (default: expectation values, no shot noise)"),
    out: Path = typer.Option(Path("noise_study"), help="output folder: noise_study.json, .md, .png"),
    resume: bool = typer.Option(False, "--resume", help="keep the points already in OUT/noise_study.json that "
                                "match these settings (e.g. of a killed run) and compute only the rest"),
    overwrite: Overwrite = False,
    noisy_engine: NoisyEngine = "batched",
):
    """Energy RMSE vs the exact engine across noise scales, transpile profiles and mitigations.

    Every finished point is written to OUT/noise_study.json at once, so a killed study keeps its points;
    rerun with --resume to finish it."""
    import json

    from .checkpoint import atomic_write_json, refuse_to_overwrite
    from .hardware_studies import noise_study
    from .plots import plot_noise_study

    results = out / "noise_study.json"
    try:
        refuse_resume_with_overwrite(resume, overwrite, "keep the points, or replace them")
        if not (resume or overwrite):
            refuse_to_overwrite(results, resumable=True)
    except HQCError as exc:
        _fail(exc)
    done = json.loads(results.read_text()) if resume and results.exists() else []

    def save(rows):
        last = rows[-1]
        console.print(f"{last['profile']} scale {last['scale']:g} {last['mitigation']}: "
                      f"RMSE {last['rmse_mev_per_atom']:.3f} meV/atom", highlight=False)
        atomic_write_json(rows, results)

    try:
        model, frames = _load_study_inputs(run_dir, structures, n_structures)
        out.mkdir(parents=True, exist_ok=True)
        rows = noise_study(model, frames, noise, profiles.split(","), number_list(scales, "--scales"), mitigations.split(","),
                           np.inf if shots is None else shots, done=done, on_row=save, engine=noisy_engine)
    except (HQCError, ValueError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        interrupted(results)   # every finished point is in it; --resume computes the rest
    atomic_write_json(rows, results)
    plot_noise_study(rows, out / "noise_study.png")
    _print_rows(rows, ["profile", "idle_delays", "scale", "mitigation", "rmse_mev_per_atom", "mean_error_mev_per_atom"],
                out / "noise_study.md")


def shots_study_cmd(
    run_dir: StudyRun,
    structures: StudyStructures = Path("data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz"),
    n_structures: StudyCount = 3,
    backend: str = typer.Option("aer", help="simulator backend (aer or aer-noise:<model>)"),
    shots: str = typer.Option("1000,3000,10000,30000,100000", help="comma-separated shots per circuit"),
    repeats: int = typer.Option(3, min=1, help="repeats per structure and shot count"),
    target: float = typer.Option(2.0, help="standard error (meV/atom) for the uniform-vs-optimal shot count"),
    out: Path = typer.Option(Path("shots_study"), help="output folder: shots_study.json, .md, .png"),
    overwrite: Overwrite = False,
    noisy_engine: NoisyEngine = "batched",
):
    """Energy error vs shots (log-log, with the 1/sqrt(S) line) for uniform and optimal allocation."""
    from .checkpoint import atomic_write_json, refuse_to_overwrite
    from .hardware_studies import shots_for_stderr, shots_study
    from .plots import plot_shots_study
    from .quantum.backends import make_backend

    try:
        if not overwrite:
            refuse_to_overwrite(out / "shots_study.json")
        model, frames = _load_study_inputs(run_dir, structures, n_structures)
        simulator = make_backend(backend, engine=noisy_engine)
        needed = shots_for_stderr(model, frames, target)   # cheap (exact prior), and checks --target before the study
        rows = shots_study(model, frames, simulator, number_list(shots, "--shots", integer=True, minimum=2), repeats=repeats)
    except (HQCError, ValueError) as exc:
        _fail(exc)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"rows": rows, "shots_for_target": needed}, out / "shots_study.json")
    plot_shots_study(rows, out / "shots_study.png")
    _print_rows(rows, ["allocation", "shots_per_circuit", "rmse_mev_per_atom", "predicted_stderr_mev_per_atom"], out / "shots_study.md")
    console.print(f"shots per structure for {target} meV/atom: uniform {needed['uniform_total_shots']:.3g}, "
                  f"optimal {needed['optimal_total_shots']:.3g} (ratio {needed['ratio_optimal_over_uniform']:.3f})")


def _print_rows(rows: list[dict], cols: list[str], md_path: Path) -> None:
    table = Table()
    for c in cols:
        table.add_column(c.replace("_", " "), justify="right")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    md_path.write_text("\n".join(lines) + "\n")


def noise_aware_cmd(
    run_dir: Path = typer.Argument(..., help="run directory of a trained HQC model (its config.yaml and best model)"),
    backend: str = typer.Option(..., help="the noisy device: aer-noise:<model>[@<profile>] (see `hqc-qiskit backends`)"),
    out: Path = typer.Option(..., help="run directory of the fine-tuned model"),
    noise_scale: NoiseScale = 1.0,
    epochs: int = typer.Option(30, min=1, help="epochs of fine-tuning"),
    lr: float = typer.Option(1e-3, help="learning rate of the fine-tuning (fresh optimizer; the source's schedule)"),
    max_minutes: Optional[float] = typer.Option(None, help="stop (checkpointed, resumable) after this wall time"),
    override: list[str] = typer.Option([], "--override", "-o", help="key.sub=value on the fine-tuning config; repeatable"),
    test: Optional[Path] = typer.Option(None, help="labelled test structures (default: the source config's test file)"),
    verify_frames: int = typer.Option(1, min=0, help="test frames whose energy and forces are also computed from the "
                                      "backend's simulated circuits (parameter shift), as a check of the noisy readouts"),
    drift_scales: str = typer.Option("", help="comma-separated other noise scales to evaluate both models at (the "
                                     "device's error rates drifted since the snapshot), e.g. 0.8,1.25"),
    train_circuits: bool = typer.Option(False, "--train-circuits", help="train the circuit weights through the noise "
                                        "too (exact gradients of the noisy expectation values; default: they keep "
                                        "the source's)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted fine-tuning from OUT/checkpoint.pt "
                                "(on a finished one: only the report is made again)"),
    overwrite: Overwrite = False,
):
    """Noise-aware fine-tuning: train an HQC model further through the device's noisy readouts.

    The circuits return the noisy expectation values of BACKEND (exact: the noisy circuit's observables evolved
    backwards, checked against direct simulations); backbone, embeddings and decode layers, and with
    --train-circuits the circuit weights, are trained further against the DFT labels. Then the test set is evaluated for the source and the fine-tuned model on exact and on noisy readouts
    (and at --drift-scales): OUT/noise_aware.json and .png."""
    from .checkpoint import CHECKPOINT
    from .noise_aware import REPORT, REPORT_PLOT, noise_aware_config, readouts_label, report
    from .train import Trainer

    cfg = None
    try:
        refuse_resume_with_overwrite(resume, overwrite)
        cfg = noise_aware_config(run_dir, backend, out, noise_scale, epochs, lr, max_minutes, override, train_circuits)
        test = test or cfg.data.test
        if test is None:
            raise HQCError(f"{run_dir}: its config names no test file; pass --test")
        trainer = Trainer(cfg, resume=resume, progress=sys.stderr.isatty(), overwrite=overwrite)
        summary = trainer.fit()
        console.print(f"fine-tuned {summary['epochs']} epochs ({summary['stop_reason']}), "
                      f"{summary['train_seconds'] / 60:.1f} min")
        if summary["stop_reason"] == "max_minutes":
            console.print("stopped by --max-minutes: run the same command with --resume to finish; report not written")
            return
        result = report(out, run_dir, test, verify_frames, number_list(drift_scales, "--drift-scales", minimum=1e-6) if drift_scales else [])
    except HQCError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        interrupted(None if cfg is None else Path(cfg.run_dir()) / CHECKPOINT)
    table = Table(title=f"test set vs DFT ({result['noise_backend']} x{result['noise_scale']:g})")
    for col in ("model", "readouts", "noise scale", "E RMSE (meV/atom)", "F RMSE (eV/Å)"):
        table.add_column(col)
    for row in result["rows"]:
        scale = "-" if row["noise_scale"] is None else f"{row['noise_scale']:g}"
        table.add_row(row["model"], readouts_label(row, result["noise_backend"]), scale, f"{row['rmse_e_mev_atom']:.2f}",
                      f"{row['rmse_f_ev_a']:.4f}")
    console.print(table)
    if "verify" in result:
        v = result["verify"]
        console.print(f"noisy readouts vs the backend's simulated circuits ({v['frames']} frames, {v['circuits_per_frame']} "
                      f"circuits each): energy within {v['max_energy_difference_mev_atom']:.2e} meV/atom, forces within "
                      f"{v['max_force_difference_ev_a']:.2e} eV/Å")
    console.print(f"report: {out / REPORT}, {out / REPORT_PLOT}")


def noise_calibrate_cmd(
    run_dir: Path = typer.Argument(..., help="run directory or checkpoint of an HQC model (its circuits are measured)"),
    backend: str = typer.Option(..., help="the device: ibm_<device>, fake_<device>, or aer-noise:<model>[@<profile>] "
                                "standing in for one"),
    noise_model: Optional[str] = typer.Option(None, help="the snapshot to fit, aer-noise:<model>[@<profile>] "
                                              "(default: the model's own noisy readouts)"),
    structure: Optional[Path] = typer.Option(None, help="structures whose readout inputs are measured (default: the "
                                             "run's test file)"),
    frames: int = typer.Option(1, min=1, help="first N frames of --structure"),
    circuits: int = typer.Option(32, min=1, help="circuits per readout, drawn from the frames' inputs"),
    shots: int = typer.Option(4000, min=2, help="shots per circuit"),
    profile: Optional[str] = typer.Option(None, help="transpile profile of the device's circuits (default for "
                                          "fake_/ibm_ devices: the noise model's, so that they run on its qubits)"),
    noise_scale: NoiseScale = 1.0,
    dry_run: bool = typer.Option(False, "--dry-run", help="print circuits, shots and estimated QPU time; submit nothing"),
    max_qpu_seconds: MaxQPUSeconds = None,
    journal: Optional[Path] = typer.Option(None, help="runtime backends: keep finished jobs' counts here (resume)"),
    seed: Optional[int] = typer.Option(None, help="seed of the circuit choice and of simulated shot noise"),
    out: Path = typer.Option(Path("noise_calibration"), help="directory for noise_calibration.json and .png"),
    overwrite: Overwrite = False,
):
    """Fit the noise scale of a snapshot to a device: how far its error rates have drifted.

    The model's readout circuits are measured on BACKEND and compared with the snapshot's exact expectation
    values at scale s; the fitted s (with its standard error) is what `hqc-qiskit noise-aware --noise-scale`
    takes to re-tune a model for the device as it is now. A reduced chi2 far above 1 means the device's noise
    differs from the snapshot in kind, not only in size (docs/hardware.md "Calibrating the noise scale")."""
    from .checkpoint import load_model
    from .config import load_config
    from .data.dataset import read_structures
    from .noise_calibration import REPORT, calibrate, calibration_batch, default_noise_model, write_report
    from .quantum.backends import RuntimeOptions, make_backend

    try:
        if (out / REPORT).exists() and not overwrite and not dry_run:   # measured data may have cost QPU time
            raise HQCError(f"{out / REPORT} already holds a calibration: write elsewhere with --out, or replace it "
                           "with --overwrite")
        model = load_model(run_dir).double()
        snapshot = default_noise_model(model, noise_model)
        if structure is None:
            config = (run_dir if run_dir.is_dir() else run_dir.parent) / "config.yaml"
            structure = load_config(config).data.test if config.exists() else None
            if structure is None:
                raise HQCError(f"{run_dir}: no config.yaml naming a test file beside it; pass --structure")
        atoms = read_structures(structure)
        if frames > len(atoms):
            raise HQCError(f"--frames {frames}: {structure} has {len(atoms)} frames")
        runtime = RuntimeOptions(max_qpu_seconds=max_qpu_seconds, journal=str(journal) if journal else None, seed=seed)
        if profile is None and backend.startswith(("fake_", "ibm_")):
            # the device must run the circuits on the qubits whose noise the snapshot describes
            profile = make_backend(snapshot).profile
        b = make_backend(backend, profile, noise_scale, None, runtime)
        rng = np.random.default_rng(seed)
        if dry_run:
            batch = calibration_batch(model, atoms[:frames], circuits, rng)
            cost = b.cost(batch, np.full(len(batch), float(shots)))
            for key, value in cost.items():
                console.print(f"{key:>22}: {value}")
            print_cap_check(cost["qpu_seconds"], max_qpu_seconds)
            console.print("dry run: nothing was submitted")
            return
        result = calibrate(model, atoms[:frames], b, snapshot, shots, circuits, rng)
        result.update(model=os.path.normpath(run_dir), structure=os.path.normpath(structure), seed=seed)
        json_path, plot_path = write_report(result, out)
    except (HQCError, ValueError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        interrupted(journal, "run the same command to continue (finished jobs are not submitted again)")
    trained = model.config.readout.noise_scale if model.config.readout.engine == "noisy" else None
    device = result["backend"] + ("" if result["backend_noise_scale"] is None else f" x{result['backend_noise_scale']:g}")
    console.print(f"{device}: noise scale {result['fitted_scale']:.4f} ± {result['stderr']:.4f} of "
                  f"{snapshot} ({result['circuits']} circuits x {shots} shots)")
    console.print(f"chi2 {result['chi2']:.1f} for {result['dof']} degrees of freedom (reduced {result['reduced_chi2']:.2f}, "
                  f"p = {result['p_value']:.2g}); at scale 1: {result['chi2_at_scale_1']:.1f}")
    if result["p_value"] < 1e-3:
        console.print("[yellow]the scaled snapshot does not describe this device within shot noise (p < 1e-3): its "
                      "noise differs in kind, not only in size; a new snapshot is needed rather than a scale "
                      "(hqc-qiskit noise-snapshot <device>)[/]")
    elif trained is not None:
        console.print(f"the model was trained at x{trained:g}; to re-tune it for the device as measured: hqc-qiskit "
                      f"noise-aware {run_dir} --backend {snapshot} --noise-scale {result['fitted_scale']:.3f} --out DIR"
                      + (" --train-circuits" if model.config.readout.train_circuit_weights else ""))
    console.print(f"report: {json_path}, {plot_path}")


def noise_snapshot_cmd(
    backend: str = typer.Argument(..., help="ibm_<device> (its calibration now; saved IBM account) or fake_<device>"),
    name: Optional[str] = typer.Option(None, help="noise model name (default: <device>_<calibration date>)"),
    folder: Optional[Path] = typer.Option(None, help="where the YAML and its calibration are written (default: the "
                                          "project's noise_models/, where aer-noise:<name> finds them)"),
    profile: Optional[str] = typer.Option(None, help="transpile profile the model compiles with (default: that of "
                                          "the chip's shipped noise model, e.g. ibm_eagle_compact)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a noise model of that name in --folder"),
):
    """Store a device's current calibration as a noise model: aer-noise:<name> then simulates the device as it
    is now (for noise-aware training, noise-calibrate, energy, md), not as the shipped fake backend's old
    snapshot; in the project's folders also a transpile profile <name> that places the circuits on it."""
    from .quantum.backends import RuntimeBackend
    from .quantum.noise import NOISE_DIR
    from .quantum.snapshots import write_snapshot

    folder = folder or NOISE_DIR
    try:
        device = RuntimeBackend(backend, profile).device
        if name is None:
            stamp = device.properties().last_update_date if not backend.startswith("ibm_") else None
            name = f"{backend.removeprefix('fake_').removeprefix('ibm_')}_{(stamp or _utc_now()):%Y%m%d}"
        path = write_snapshot(device, name, folder, profile, overwrite)
    except (HQCError, ValueError) as exc:
        _fail(exc)
    found_by_name = folder.resolve() == NOISE_DIR.resolve()
    console.print(f"noise model {name}: {path} (+ calibration beside it); use --backend "
                  f"aer-noise:{name if found_by_name else path}")
    if found_by_name:
        console.print(f"transpile profile {name}: placement on this calibration (--profile {name} for the device)")
    else:
        console.print("placement: the chip's shipped profile (a profile on this calibration is written only into "
                      "the project's noise_models/ and transpile_profiles/)")


def _utc_now():
    import datetime

    return datetime.datetime.now(datetime.timezone.utc)


def register(app: typer.Typer) -> None:
    app.command("transpile")(transpile_cmd)
    app.command("backends")(backends_cmd)
    app.command("energy")(energy_cmd)
    app.command("noise-study")(noise_study_cmd)
    app.command("shots-study")(shots_study_cmd)
    app.command("noise-aware")(noise_aware_cmd)
    app.command("noise-calibrate")(noise_calibrate_cmd)
    app.command("noise-snapshot")(noise_snapshot_cmd)
