"""Monte Carlo of a structure with a trained potential on any backend: energies, logs, samples, resume.

Wraps :func:`hqc_qiskit.mc.run_chain` (the algorithm) with what a run needs: energies from the
exact engine or shot-based from a backend, an optional step-size adaptation during equilibration,
a step log (CSV), sampled configurations (extxyz), the checkpoint, and the hardware cost.
With ``ensemble="npt"`` the chain also makes isotropic volume moves (a fraction ``volume_probability`` of
its steps) and samples the isobaric ensemble at ``pressure``; the log then has the volume and density.
Units: Å, eV, K, GPa.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from ase import Atoms, units

from .autocorr import averages, error_bar_check
from .checkpoint import atomic_write_json
from .coverage import frames_outside
from .errors import HQCError
from .mc import (ACCEPTANCES, KB_EV, ChainState, Measurement, configuration_volume, displace, join_configuration,
                 noise_acceptance_ceiling, npt_log_weight, reused_energy_unbiased, run_chain, scale_volume,
                 split_configuration)
from .runlog import StepLog, StepTrajectory, check_same_options, read_resume_checkpoint

CHECKPOINT, LOG, TRAJECTORY, SUMMARY = "mc_checkpoint.json", "mc_log.csv", "mc_traj.extxyz", "mc_summary.json"
LOG_FIELDS = ["energy_eV", "trial_energy_eV", "sigma_eV", "accepted", "acceptance_ratio", "delta_A",
              "shots_total", "qpu_seconds_total"]
REMEASURE_FIELDS = ["fresh_energy_eV", "fresh_sigma_eV"]   # --remeasure: the step's new estimate of the state it began in
NPT_FIELDS = ["volume_move", "volume_A3", "density_g_cm3", "max_dlnv"]   # isobaric chains
ENSEMBLES = ("nvt", "npt")
ADAPT_WINDOW = 50   # steps between step-size updates while adapting
# options added after chains were first checkpointed: an older checkpoint without them ran with these values
LATER_OPTIONS = {"ensemble": "nvt", "pressure": 0.0, "volume_probability": 0.1, "max_dlnv": 0.01,
                 "noise_scaled_target": False}


@dataclass
class MCOptions:
    """A run's settings. Defaults: the paper's 2000 K, 5 atoms moved by N(0, 0.015 Å)."""

    steps: int = 1000
    temperature: float = 2000.0     # K
    n_moved: int = 5
    delta: float = 0.015            # Å
    adapt_steps: int = 0            # adapt delta towards target_acceptance during the first N steps (0: fixed)
    target_acceptance: float = 0.5
    acceptance: str = "penalty"     # plain (the paper) or penalty (Ceperley-Dewing)
    remeasure: bool = False         # measure the current state afresh every step (else reuse its estimate)
    shots: int = 50000              # per circuit, average
    allocation: str = "uniform"
    seed: int = 0
    sample_every: int = 10
    checkpoint_every: int = 10
    ensemble: str = "nvt"           # nvt (the paper: fixed cell) or npt (isotropic volume moves too)
    pressure: float = 0.0           # GPa, npt
    volume_probability: float = 0.1   # npt: fraction of the steps that are volume moves
    max_dlnv: float = 0.01          # npt: ln V changes by up to this per volume move (adapted with adapt_steps)
    # adapt towards target_acceptance x the acceptance that the energies' noise alone allows
    # (mc.noise_acceptance_ceiling), not towards target_acceptance itself
    noise_scaled_target: bool = True

    def validate(self) -> None:
        if self.acceptance not in ACCEPTANCES:
            raise HQCError(f"unknown acceptance {self.acceptance!r}; choose one of {ACCEPTANCES}")
        if self.ensemble not in ENSEMBLES:
            raise HQCError(f"unknown ensemble {self.ensemble!r}; choose one of {ENSEMBLES}")
        if not math.isfinite(self.pressure):
            raise HQCError(f"pressure must be a finite number of GPa (got {self.pressure})")
        if self.ensemble != "npt" and self.pressure != 0:   # it would be silently ignored
            raise HQCError(f"pressure must be 0 unless the ensemble is npt (got {self.pressure} GPa with {self.ensemble})")
        if not 0 < self.volume_probability < 1:
            raise HQCError(f"volume_probability must lie in (0, 1) (got {self.volume_probability})")
        if not 0 < self.max_dlnv <= 0.5:
            raise HQCError(f"max_dlnv must lie in (0, 0.5] (got {self.max_dlnv}; 0.01 changes the cell edge by 0.3%)")
        defaults = (MCOptions.volume_probability, MCOptions.max_dlnv)
        if self.ensemble != "npt" and (self.volume_probability, self.max_dlnv) != defaults:
            raise HQCError(f"volume_probability and max_dlnv set the volume moves of npt; {self.ensemble} makes none "
                           "(they would be ignored)")
        for name in ("steps", "n_moved", "shots", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise HQCError(f"{name} must be at least 1")
        for name in ("delta", "temperature"):
            if not getattr(self, name) > 0:   # also refuses NaN
                raise HQCError(f"{name} must be positive (got {getattr(self, name)})")
        if self.adapt_steps < 0:
            raise HQCError(f"adapt_steps must be >= 0 (got {self.adapt_steps})")
        if not 0 < self.target_acceptance < 1:
            raise HQCError("target_acceptance must lie in (0, 1)")

    def energies_per_step(self) -> int:
        return 2 if self.remeasure else 1


def energy_measure(model, atoms: Atoms, backend, opt: MCOptions) -> Callable[[np.ndarray, np.random.Generator], Measurement]:
    """configuration -> Measurement in eV: the model's own exact energy for backend 'exact', otherwise shot-based on
    ``backend`` (shot noise drawn from the chain's generator). The configuration is the positions (N, 3) Å, or for
    ``opt.ensemble == "npt"`` positions and cell (N + 3, 3) (:func:`.mc.join_configuration`)."""
    from .data.graph import atoms_to_graph, collate, to_device
    from .quantum.estimate import estimate_energy

    template = atoms.copy()
    template.calc = None
    param = next(model.parameters())

    def place(config):
        if opt.ensemble == "npt":
            positions, cell = split_configuration(config)
            template.set_cell(cell)
            template.set_positions(positions)
        else:
            template.set_positions(config)

    def exact(config, _rng):
        place(config)
        graph = to_device(collate([atoms_to_graph(template, model.config.cutoff, model.config.species)]), param.device, param.dtype)
        with torch.no_grad():
            return Measurement(float(model(graph, compute_forces=False)["energy"][0]), 0.0)

    def shot_based(config, rng):
        place(config)
        est = estimate_energy(model, template, backend, opt.shots, opt.allocation, rng)
        return Measurement(est.energy, est.stderr, est.shots, est.qpu_seconds)

    return exact if backend is None or backend.name == "exact" else shot_based


def mc_cost(model, atoms: Atoms, backend, opt: MCOptions) -> dict:
    """What the run would cost: one energy's circuits/shots/QPU seconds, times the energies the run measures."""
    from .quantum.estimate import readout_problem, shots_per_circuit

    problem = readout_problem(model, atoms)
    one = backend.cost(problem.batch, shots_per_circuit(problem, opt.shots, opt.allocation))
    energies = 1 + opt.steps * opt.energies_per_step()
    return {"backend": one["backend"], "energies": energies, "circuits_per_energy": one["circuits"],
            "shots_per_energy": one["shots"], "qpu_seconds_per_energy": one["qpu_seconds"],
            "total_circuits": one["circuits"] * energies, "total_shots": one["shots"] * energies,
            "total_qpu_seconds": one["qpu_seconds"] * energies, "total_qpu_hours": one["qpu_seconds"] * energies / 3600}


def noise_ceiling(sigma: float, opt: MCOptions) -> float:
    """:func:`.mc.noise_acceptance_ceiling` of a chain run with ``opt`` whose energies have standard error ``sigma``
    (eV)."""
    return noise_acceptance_ceiling(sigma / (KB_EV * opt.temperature), opt.acceptance, reused=not opt.remeasure)


def adapt_target(sigma: float, opt: MCOptions) -> float:
    """The acceptance ratio the step-size adaptation aims for when energies have standard error ``sigma`` (eV):
    ``target_acceptance`` times the ratio that noise of this size alone allows (:func:`.mc.noise_acceptance_ceiling`;
    1 for exact energies), so that a noisy chain keeps about the step sizes of an exact one instead of shrinking
    them until the noise and the moves together are rejected half the time (docs/simulation.md "Step sizes
    with noisy energies")."""
    if not opt.noise_scaled_target:
        return opt.target_acceptance
    return opt.target_acceptance * noise_ceiling(sigma, opt)


def _adapt(state: ChainState, accepted: bool, volume_move: bool, opt: MCOptions) -> None:
    """During the first adapt_steps steps, scale delta after every ADAPT_WINDOW displacements (and in npt max_dlnv
    after every ADAPT_WINDOW volume moves) by (that window's acceptance / target), clipped to [0.5, 2]. A canonical
    chain's displacement windows are its steps 1-50, 51-100, ... as they were before volume moves existed."""
    extra = state.extra
    kind, size = ("volume_", "max_dlnv") if volume_move else ("", "delta")
    # a checkpoint from before the move counts: every step was a displacement
    moves = extra.get(kind + "window_moves", 0 if volume_move else (state.step - 1) % ADAPT_WINDOW) + 1
    extra[kind + "window_accepted"] = extra.get(kind + "window_accepted", 0) + int(accepted)
    extra[kind + "window_moves"] = moves
    if moves == ADAPT_WINDOW:
        if state.step <= opt.adapt_steps:
            ratio = extra[kind + "window_accepted"] / ADAPT_WINDOW / adapt_target(state.sigma, opt)
            extra[size] = min(extra[size] * min(2.0, max(0.5, ratio)), 0.5 if volume_move else math.inf)
        extra[kind + "window_accepted"] = extra[kind + "window_moves"] = 0


def chain_averages(rows: list[dict], opt: MCOptions, n_atoms: int, shot_based: bool) -> dict:
    """:func:`averages` of :func:`chain_series`."""
    return averages(chain_series(rows, opt, n_atoms, shot_based), 1)


def chain_series(rows: list[dict], opt: MCOptions, n_atoms: int, shot_based: bool) -> dict[str, list[float]]:
    """The series a chain's summary averages, from its log after the adaptation and the first fifth (per step):
    ``energy_eV_per_atom`` estimates <E> (exact energies; shot-based with the current energy reused, the
    kept estimates corrected by + s^2 / k_B T, mc.reused_energy_unbiased; shot-based and re-measured, the fresh
    estimates of the states each step began in, which no acceptance has selected); on a shot-based backend also
    ``energy_measured_eV_per_atom``, the kept estimates as logged (biased low by the selection under either rule).
    A re-measured log without the fresh columns (written before they existed) gives only the measured mean.
    An isobaric chain's also have ``density_g_cm3`` and ``volume_A3`` (Å^3)."""
    tail = rows[max(opt.adapt_steps, len(rows) // 5):]
    measured = [r["energy_eV"] / n_atoms for r in tail]
    cell = {c: [r[c] for r in tail] for c in ("density_g_cm3", "volume_A3") if opt.ensemble == "npt"}
    if not shot_based:
        return {"energy_eV_per_atom": measured, **cell}
    series = {"energy_measured_eV_per_atom": measured, **cell}
    if not opt.remeasure:
        series["energy_eV_per_atom"] = [reused_energy_unbiased(r["energy_eV"], r["sigma_eV"], opt.temperature) / n_atoms
                                        for r in tail]
    elif tail and "fresh_energy_eV" in tail[0]:
        series["energy_eV_per_atom"] = [r["fresh_energy_eV"] / n_atoms for r in tail]
    return series


def run_mc(model, atoms: Atoms, backend, opt: MCOptions, out_dir: str | Path, resume: bool = False,
           progress: Callable[[int, int], None] | None = None, coverage: dict | None = None) -> dict:
    """Run (or resume) a Metropolis chain; writes mc_log.csv, mc_traj.extxyz, mc_checkpoint.json, mc_summary.json.
    ``coverage``: the model's training coverage (:func:`.coverage.coverage_of`); the summary then says how many
    saved samples left it (``samples_outside_training``)."""
    opt.validate()
    if opt.n_moved > len(atoms):
        raise HQCError(f"n_moved {opt.n_moved} exceeds the {len(atoms)} atoms of the structure")
    if opt.ensemble == "npt" and not atoms.pbc.all():
        raise HQCError("npt needs a periodic structure (pbc=True with a cell)")
    out = Path(out_dir)
    ckpt = out / CHECKPOINT
    saved = read_resume_checkpoint(ckpt, resume, "MC")
    resume_step = None
    if saved is not None:
        try:
            resume_step, saved_opt = saved["step"], saved["extra"]["options"]
        except (KeyError, TypeError) as exc:
            raise HQCError(f"{ckpt}: unreadable MC checkpoint (missing {exc}); start a new output folder") from None
        before = {**LATER_OPTIONS, **saved_opt}
        if backend is None or resume_step >= opt.adapt_steps:   # the target steers nothing more: keep the chain's own
            opt = replace(opt, noise_scaled_target=before["noise_scaled_target"])
        check_same_options(ckpt, before, asdict(opt), resume_step)
    fields = LOG_FIELDS + (REMEASURE_FIELDS if opt.remeasure else []) + (NPT_FIELDS if opt.ensemble == "npt" else [])
    run = _ChainOutputs(opt, StepLog(out / LOG, fields, resume_step), StepTrajectory(out / TRAJECTORY, resume_step),
                        atoms.copy(), energy_measure(model, atoms, backend, opt), progress)
    npt = opt.ensemble == "npt"
    start = join_configuration(atoms.get_positions(), atoms.get_cell().array) if npt else atoms.get_positions()
    log_weight = npt_log_weight(opt.pressure * units.GPa, 1.0 / (KB_EV * opt.temperature)) if npt else None
    state = run_chain(run.measure, start, opt.temperature, opt.steps, run.propose, opt.acceptance,
                      opt.seed, ckpt, opt.checkpoint_every, run.on_step, opt.remeasure, run.on_start, run.on_checkpoint,
                      log_weight)
    run.log.flush()
    run.traj.flush()
    summary = {"steps": state.step, "accepted": state.accepted, "acceptance_ratio": state.accepted / max(state.step, 1),
               "final_energy_eV": state.energy, "final_sigma_eV": state.sigma, "final_delta_A": state.extra["delta"],
               "shots_total": state.shots, "qpu_seconds_total": state.qpu_seconds,
               "backend": getattr(backend, "name", "exact"), "n_atoms": len(atoms),
               "wall_seconds": run.wall_seconds(), "options": asdict(opt)}
    if npt:
        volume_moves = state.extra.get("volume_moves", 0)
        summary.update(volume_moves=volume_moves, volume_accepted=state.extra.get("volume_accepted", 0),
                       volume_acceptance_ratio=state.extra.get("volume_accepted", 0) / max(volume_moves, 1),
                       final_max_dlnv=state.extra["max_dlnv"], final_density_g_cm3=run.density(state.positions))
    rows = run.log.rows()
    series = chain_series(rows, opt, len(atoms), shot_based=backend is not None)
    if backend is not None and rows:   # what the step sizes could reach at all, from the chain's typical sigma
        summary["noise_acceptance_ceiling"] = noise_ceiling(float(np.mean([r["sigma_eV"] for r in rows])), opt)
    summary["averages"] = averages(series, 1)
    summary["error_bar_check"] = error_bar_check(series, summary["averages"])
    if coverage is not None:   # over the saved samples (every sample_every steps), the resumed runs' included
        summary.update(training_coverage=coverage, samples_outside_training=frames_outside(run.traj.read(), coverage))
    atomic_write_json(summary, out / SUMMARY)
    return summary


class _ChainOutputs:
    """The callbacks of one chain: step size (adapted and checkpointed), log rows, samples, wall time."""

    def __init__(self, opt: MCOptions, log: StepLog, traj: StepTrajectory, frame: Atoms, measure, progress):
        self.opt, self.log, self.traj, self.frame, self._measure, self.progress = opt, log, traj, frame, measure, progress
        self.delta, self.max_dlnv = opt.delta, opt.max_dlnv
        self.volume_move = False   # what the last proposal was
        self.mass_g = float(frame.get_masses().sum()) * units._amu * 1e3
        self.trial_energy = math.nan
        self.t0, self.wall_before = time.perf_counter(), 0.0
        self.t_last_step = self.t0

    def wall_seconds(self) -> float:
        """Seconds spent on this chain up to its last step, over all runs: resuming a finished chain
        (to re-read its summary) adds nothing."""
        return self.wall_before + self.t_last_step - self.t0

    def measure(self, positions, rng) -> Measurement:
        m = self._measure(positions, rng)
        self.trial_energy = m.energy
        return m

    def propose(self, config, rng):
        """A displacement of n_moved atoms, or in npt with probability volume_probability a volume move (a
        canonical chain draws nothing for the choice, so it is the same chain as before volume moves existed)."""
        self.volume_move = self.opt.ensemble == "npt" and rng.random() < self.opt.volume_probability
        if self.volume_move:
            return scale_volume(config, rng, self.max_dlnv)
        if self.opt.ensemble == "npt":
            positions, cell = split_configuration(config)
            return join_configuration(displace(positions, rng, self.opt.n_moved, self.delta), cell)
        return displace(config, rng, self.opt.n_moved, self.delta)

    def density(self, config) -> float:
        """g/cm³ of an isobaric configuration."""
        return self.mass_g / (configuration_volume(config) * 1e-24)

    def _sample(self, state: ChainState) -> None:
        if self.opt.ensemble == "npt":
            positions, cell = split_configuration(state.positions)
            self.frame.set_cell(cell)
            self.frame.set_positions(positions)
        else:
            self.frame.set_positions(state.positions)
        self.traj.add(self.frame, state.step, energy_eV=state.energy, sigma_eV=state.sigma)

    def on_start(self, state: ChainState) -> None:
        state.extra.setdefault("delta", self.opt.delta)
        state.extra["options"] = asdict(self.opt)
        self.delta = state.extra["delta"]
        if self.opt.ensemble == "npt":
            state.extra.setdefault("max_dlnv", self.opt.max_dlnv)
            self.max_dlnv = state.extra["max_dlnv"]
        self.wall_before = state.extra.get("wall_seconds", 0.0)
        if state.step == 0:
            self._sample(state)

    def on_step(self, state: ChainState, accepted: bool) -> None:
        self.t_last_step = time.perf_counter()
        npt = {}
        if self.opt.ensemble == "npt":
            state.extra["volume_moves"] = state.extra.get("volume_moves", 0) + int(self.volume_move)
            state.extra["volume_accepted"] = state.extra.get("volume_accepted", 0) + int(self.volume_move and accepted)
            npt = dict(volume_move=int(self.volume_move), volume_A3=configuration_volume(state.positions),
                       density_g_cm3=self.density(state.positions), max_dlnv=self.max_dlnv)
        self.log.add(state.step, energy_eV=state.energy, trial_energy_eV=self.trial_energy, sigma_eV=state.sigma,
                     accepted=int(accepted), acceptance_ratio=state.accepted / state.step, delta_A=self.delta,
                     shots_total=state.shots, qpu_seconds_total=state.qpu_seconds,
                     fresh_energy_eV=state.fresh_energy, fresh_sigma_eV=state.fresh_sigma, **npt)
        _adapt(state, accepted, self.volume_move, self.opt)
        self.delta = state.extra["delta"]
        self.max_dlnv = state.extra.get("max_dlnv", self.opt.max_dlnv)
        if state.step % self.opt.sample_every == 0:
            self._sample(state)
        if self.progress is not None:
            self.progress(state.step, self.opt.steps)

    def on_checkpoint(self, state: ChainState) -> None:
        state.extra["wall_seconds"] = self.wall_seconds()
        self.log.flush()
        self.traj.flush()
