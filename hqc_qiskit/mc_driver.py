"""Monte Carlo of a structure with a trained potential on any backend: energies, logs, samples, resume.

Wraps :func:`hqc_qiskit.mc.run_chain` (the algorithm) with what a run needs: energies from the
exact engine or shot-based from a backend, an optional step-size adaptation during equilibration,
a step log (CSV), sampled configurations (extxyz), the checkpoint, and the hardware cost.
Units: Å, eV, K.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from ase import Atoms

from .autocorr import averages
from .checkpoint import atomic_write_json
from .coverage import frames_outside
from .errors import HQCError
from .mc import ACCEPTANCES, ChainState, Measurement, displace, reused_energy_unbiased, run_chain
from .runlog import StepLog, StepTrajectory, check_same_options, read_resume_checkpoint

CHECKPOINT, LOG, TRAJECTORY, SUMMARY = "mc_checkpoint.json", "mc_log.csv", "mc_traj.extxyz", "mc_summary.json"
LOG_FIELDS = ["energy_eV", "trial_energy_eV", "sigma_eV", "accepted", "acceptance_ratio", "delta_A",
              "shots_total", "qpu_seconds_total"]
REMEASURE_FIELDS = ["fresh_energy_eV", "fresh_sigma_eV"]   # --remeasure: the step's new estimate of the state it began in
ADAPT_WINDOW = 50   # steps between step-size updates while adapting


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

    def validate(self) -> None:
        if self.acceptance not in ACCEPTANCES:
            raise HQCError(f"unknown acceptance {self.acceptance!r}; choose one of {ACCEPTANCES}")
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
    """positions (N, 3) Å -> Measurement in eV: the model's own exact energy for backend 'exact',
    otherwise shot-based on ``backend`` (shot noise drawn from the chain's generator)."""
    from .data.graph import atoms_to_graph, collate, to_device
    from .quantum.estimate import estimate_energy

    template = atoms.copy()
    template.calc = None
    param = next(model.parameters())

    def exact(positions, _rng):
        template.set_positions(positions)
        graph = to_device(collate([atoms_to_graph(template, model.config.cutoff, model.config.species)]), param.device, param.dtype)
        with torch.no_grad():
            return Measurement(float(model(graph, compute_forces=False)["energy"][0]), 0.0)

    def shot_based(positions, rng):
        template.set_positions(positions)
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


def _adapt(state: ChainState, accepted: bool, opt: MCOptions) -> None:
    """During the first adapt_steps steps, scale delta every ADAPT_WINDOW steps by (window acceptance / target), clipped to [0.5, 2]."""
    extra = state.extra
    extra["window_accepted"] = extra.get("window_accepted", 0) + int(accepted)
    if state.step <= opt.adapt_steps and state.step % ADAPT_WINDOW == 0:
        ratio = extra["window_accepted"] / ADAPT_WINDOW / opt.target_acceptance
        extra["delta"] = extra["delta"] * min(2.0, max(0.5, ratio))
        extra["window_accepted"] = 0


def chain_averages(rows: list[dict], opt: MCOptions, n_atoms: int, shot_based: bool) -> dict:
    """Mean energies per atom of a chain's log after the adaptation and the first fifth, with autocorrelation-aware
    errors: ``energy_eV_per_atom`` estimates <E> (exact energies; shot-based with the current energy reused, the
    kept estimates corrected by + s^2 / k_B T, mc.reused_energy_unbiased; shot-based and re-measured, the fresh
    estimates of the states each step began in, which no acceptance has selected); on a shot-based backend also
    ``energy_measured_eV_per_atom``, the kept estimates as logged (biased low by the selection under either rule).
    A re-measured log without the fresh columns (written before they existed) gives only the measured mean."""
    tail = rows[max(opt.adapt_steps, len(rows) // 5):]
    measured = [r["energy_eV"] / n_atoms for r in tail]
    if not shot_based:
        return averages({"energy_eV_per_atom": measured}, 1)
    series = {"energy_measured_eV_per_atom": measured}
    if not opt.remeasure:
        series["energy_eV_per_atom"] = [reused_energy_unbiased(r["energy_eV"], r["sigma_eV"], opt.temperature) / n_atoms
                                        for r in tail]
    elif tail and "fresh_energy_eV" in tail[0]:
        series["energy_eV_per_atom"] = [r["fresh_energy_eV"] / n_atoms for r in tail]
    return averages(series, 1)


def run_mc(model, atoms: Atoms, backend, opt: MCOptions, out_dir: str | Path, resume: bool = False,
           progress: Callable[[int, int], None] | None = None, coverage: dict | None = None) -> dict:
    """Run (or resume) a Metropolis chain; writes mc_log.csv, mc_traj.extxyz, mc_checkpoint.json, mc_summary.json.
    ``coverage``: the model's training coverage (:func:`.coverage.coverage_of`); the summary then says how many
    saved samples left it (``samples_outside_training``)."""
    opt.validate()
    if opt.n_moved > len(atoms):
        raise HQCError(f"n_moved {opt.n_moved} exceeds the {len(atoms)} atoms of the structure")
    out = Path(out_dir)
    ckpt = out / CHECKPOINT
    saved = read_resume_checkpoint(ckpt, resume, "MC")
    resume_step = None
    if saved is not None:
        try:
            resume_step, saved_opt = saved["step"], saved["extra"]["options"]
        except (KeyError, TypeError) as exc:
            raise HQCError(f"{ckpt}: unreadable MC checkpoint (missing {exc}); start a new output folder") from None
        check_same_options(ckpt, saved_opt, asdict(opt))
    fields = LOG_FIELDS + (REMEASURE_FIELDS if opt.remeasure else [])
    run = _ChainOutputs(opt, StepLog(out / LOG, fields, resume_step), StepTrajectory(out / TRAJECTORY, resume_step),
                        atoms.copy(), energy_measure(model, atoms, backend, opt), progress)
    state = run_chain(run.measure, atoms.get_positions(), opt.temperature, opt.steps, run.propose, opt.acceptance,
                      opt.seed, ckpt, opt.checkpoint_every, run.on_step, opt.remeasure, run.on_start, run.on_checkpoint)
    run.log.flush()
    run.traj.flush()
    summary = {"steps": state.step, "accepted": state.accepted, "acceptance_ratio": state.accepted / max(state.step, 1),
               "final_energy_eV": state.energy, "final_sigma_eV": state.sigma, "final_delta_A": state.extra["delta"],
               "shots_total": state.shots, "qpu_seconds_total": state.qpu_seconds,
               "backend": getattr(backend, "name", "exact"), "n_atoms": len(atoms),
               "wall_seconds": run.wall_seconds(), "options": asdict(opt)}
    summary["averages"] = chain_averages(run.log.rows(), opt, len(atoms), shot_based=backend is not None)
    if coverage is not None:   # over the saved samples (every sample_every steps), the resumed runs' included
        summary.update(training_coverage=coverage, samples_outside_training=frames_outside(run.traj.read(), coverage))
    atomic_write_json(summary, out / SUMMARY)
    return summary


class _ChainOutputs:
    """The callbacks of one chain: step size (adapted and checkpointed), log rows, samples, wall time."""

    def __init__(self, opt: MCOptions, log: StepLog, traj: StepTrajectory, frame: Atoms, measure, progress):
        self.opt, self.log, self.traj, self.frame, self._measure, self.progress = opt, log, traj, frame, measure, progress
        self.delta = opt.delta
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

    def propose(self, positions, rng):
        return displace(positions, rng, self.opt.n_moved, self.delta)

    def _sample(self, state: ChainState) -> None:
        self.frame.set_positions(state.positions)
        self.traj.add(self.frame, state.step, energy_eV=state.energy, sigma_eV=state.sigma)

    def on_start(self, state: ChainState) -> None:
        state.extra.setdefault("delta", self.opt.delta)
        state.extra["options"] = asdict(self.opt)
        self.delta = state.extra["delta"]
        self.wall_before = state.extra.get("wall_seconds", 0.0)
        if state.step == 0:
            self._sample(state)

    def on_step(self, state: ChainState, accepted: bool) -> None:
        self.t_last_step = time.perf_counter()
        self.log.add(state.step, energy_eV=state.energy, trial_energy_eV=self.trial_energy, sigma_eV=state.sigma,
                     accepted=int(accepted), acceptance_ratio=state.accepted / state.step, delta_A=self.delta,
                     shots_total=state.shots, qpu_seconds_total=state.qpu_seconds,
                     fresh_energy_eV=state.fresh_energy, fresh_sigma_eV=state.fresh_sigma)
        _adapt(state, accepted, self.opt)
        self.delta = state.extra["delta"]
        if state.step % self.opt.sample_every == 0:
            self._sample(state)
        if self.progress is not None:
            self.progress(state.step, self.opt.steps)

    def on_checkpoint(self, state: ChainState) -> None:
        state.extra["wall_seconds"] = self.wall_seconds()
        self.log.flush()
        self.traj.flush()
