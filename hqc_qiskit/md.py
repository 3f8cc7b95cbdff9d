"""Molecular dynamics with a trained potential: ASE integrators, a step log, a trajectory, exact resume.

NVT uses ASE's Nose-Hoover chain (default), Langevin or Bussi thermostat; NVE uses velocity Verlet; NPT
uses ASE's isotropic Martyna-Tobias-Klein barostat with Nose-Hoover chains (needs the model's stress).
A checkpoint (JSON, atomic) holds positions, momenta, cell, the thermostat's and barostat's own state and
the random generator, so a resumed run continues the same trajectory as an uninterrupted one.
Units: Å, eV, fs, K, GPa; the log has step, time_fs, T_K, E_pot_eV, E_kin_eV, E_tot_eV, E_conserved_eV,
and for NPT also volume_A3, density_g_cm3 and P_GPa (virial plus kinetic pressure).

With a shot-based calculator (``HQCShotCalculator``: forces measured on a backend) the log also has
E_pot_exact_eV (the exact engine's energy), force_noise_rms_eV_A (RMS of measured minus exact forces: shot
noise plus any device error) and force_noise_est_eV_A (the shot noise estimated from the measurement alone),
the checkpoint holds the shot-noise generator, and the summary the mean force noise, the drift of the exact
total energy and the heating that this noise predicts (:func:`shot_noise_heating`). With ``compensate_noise``
(Langevin only) the thermostat's temperature is lowered at every step by the shift that step's estimated
noise causes, so the shot noise becomes part of the thermostat's random force instead of heating the run
(the MD counterpart of the penalty method for MC; logged as T_thermostat_K).

Every log row has min_pair_A, the closest distance between two atoms (periodic images included, within
4 Å); given the model's training coverage (:mod:`.coverage`: the closest distance of each species pair in its
training structures) also pair_margin_A, the smallest distance minus the training's closest for that pair:
negative where the structure holds a pair closer than any the model was trained on (its short-range repulsion
is extrapolated there), counted in the summary.

A committee (other models of the same system, e.g. other seeds) can watch the run: at every log row its
members' forces and energies on the current structure give max_force_dev_eV_A (largest per-atom committee
force deviation, the driving model included) and energy_std_meV_atom; with ``max_force_dev`` the run stops
when the structure leaves what the committee agrees on (DP-GEN's trust level), checkpoint written.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms, units
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from .autocorr import averages, error_bar_check
from .checkpoint import atomic_write_json
from .coverage import REACH, closest_pairs, pair_margin
from .data.dataset import density_g_cm3
from .errors import HQCError
from .metrics import force_deviation, pressure_gpa
from .runlog import StepLog, StepTrajectory, check_same_options, read_resume_checkpoint

ENSEMBLES = ("nvt", "nve", "npt")
THERMOSTATS = ("nose-hoover", "langevin", "bussi")
LOG_FIELDS = ["time_fs", "T_K", "E_pot_eV", "E_kin_eV", "E_tot_eV", "E_conserved_eV"]
NPT_FIELDS = ["volume_A3", "density_g_cm3", "P_GPa"]
COMMITTEE_FIELDS = ["max_force_dev_eV_A", "energy_std_meV_atom"]
SHOT_FIELDS = ["E_pot_exact_eV", "force_noise_rms_eV_A", "force_noise_est_eV_A"]
COMPENSATION_FIELDS = ["T_thermostat_K"]
PAIR_FIELDS = ["min_pair_A", "pair_margin_A"]   # the second only with a training coverage
CHECKPOINT, LOG, TRAJECTORY, SUMMARY = "md_checkpoint.json", "md_log.csv", "md_traj.extxyz", "md_summary.json"


@dataclass
class MDOptions:
    """What a run does. Defaults: the paper's 2000 K, 0.5 fs."""

    steps: int = 2000
    ensemble: str = "nvt"
    thermostat: str = "nose-hoover"
    temperature: float = 2000.0      # K (NVT target; NVE initial velocities)
    timestep: float = 0.5            # fs
    tdamp: float = 50.0              # fs, Nose-Hoover and Bussi time constant
    friction: float = 0.01           # 1/fs, Langevin
    pressure: float = 0.0            # GPa, NPT target
    pdamp: float = 500.0             # fs, NPT barostat time constant (ASE suggests ~1000 time steps)
    seed: int = 0
    log_every: int = 10
    traj_every: int = 10
    checkpoint_every: int = 100
    max_temperature_factor: float = 5.0   # stop as unstable when T exceeds this x the target
    min_distance: float = 1.0             # Å, stop as unstable when two atoms come closer (0: no check)
    max_volume_factor: float = 2.0        # NPT: stop as unstable when the volume leaves [V0 / f, f x V0]
    committee: list = field(default_factory=list)   # run dirs / checkpoints watching the run (paths as text)
    max_force_dev: float | None = None    # eV/Å, stop when the committee's largest force deviation exceeds it
    compensate_noise: bool = False        # Langevin on measured forces: the thermostat absorbs the shot noise

    def validate(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise HQCError(f"unknown ensemble {self.ensemble!r}; choose one of {ENSEMBLES}")
        if self.thermostat not in THERMOSTATS:
            raise HQCError(f"unknown thermostat {self.thermostat!r}; choose one of {THERMOSTATS}")
        for name in ("steps", "log_every", "traj_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise HQCError(f"{name} must be at least 1")
        for name in ("temperature", "timestep", "tdamp", "pdamp"):
            if not getattr(self, name) > 0:   # also refuses NaN
                raise HQCError(f"{name} must be positive (got {getattr(self, name)})")
        if not 0 <= self.friction < math.inf:
            raise HQCError(f"friction must be a finite number >= 0 (got {self.friction})")
        if not math.isfinite(self.pressure):
            raise HQCError(f"pressure must be a finite number of GPa (got {self.pressure})")
        if self.ensemble != "npt" and self.pressure != 0:   # it would be silently ignored
            raise HQCError(f"pressure must be 0 unless the ensemble is npt (got {self.pressure} GPa with {self.ensemble})")
        if self.max_force_dev is not None and not self.committee:
            raise HQCError("max_force_dev needs a committee (--committee RUN, once per other model) to measure it")
        if self.max_force_dev is not None and not 0 < self.max_force_dev < math.inf:
            raise HQCError(f"max_force_dev must be a positive number of eV/Å (got {self.max_force_dev})")
        if self.compensate_noise and not (self.ensemble == "nvt" and self.thermostat == "langevin" and self.friction > 0):
            raise HQCError("compensate_noise works through a Langevin thermostat's random force: use ensemble nvt, "
                           "thermostat langevin and friction > 0")
        if self.ensemble == "npt" and self.thermostat != "nose-hoover":
            raise HQCError(f"npt must be run with thermostat nose-hoover: the MTK barostat thermostats with its own "
                           f"Nose-Hoover chains ({self.thermostat!r} does not apply)")


def _integrator(atoms: Atoms, opt: MDOptions, rng: np.random.Generator):
    from ase.md.bussi import Bussi
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    dt = opt.timestep * units.fs
    if opt.ensemble == "nve":
        return VelocityVerlet(atoms, dt)
    if opt.ensemble == "npt":
        return IsotropicMTKNPT(atoms, dt, temperature_K=opt.temperature, pressure_au=opt.pressure * units.GPa,
                               tdamp=opt.tdamp * units.fs, pdamp=opt.pdamp * units.fs)
    if opt.thermostat == "nose-hoover":
        return NoseHooverChainNVT(atoms, dt, temperature_K=opt.temperature, tdamp=opt.tdamp * units.fs)
    if opt.thermostat == "langevin":
        # fixcm=False: ASE 3.28+ deprecates its fixcm; the centre of mass drifts freely (no FixCom constraint)
        return Langevin(atoms, dt, temperature_K=opt.temperature, friction=opt.friction / units.fs, fixcm=False, rng=rng)
    return Bussi(atoms, dt, temperature_K=opt.temperature, taut=opt.tdamp * units.fs, rng=rng)


def _thermostat_state(dyn) -> dict:
    """The integrator's own variables (ASE keeps them private and has no state API, so they are read here)."""
    if hasattr(dyn, "_barostat"):   # IsotropicMTKNPT: volume as eps = ln(V/V0)/3 about the starting cell
        return {"eta": dyn._thermostat._eta.tolist(), "p_eta": dyn._thermostat._p_eta.tolist(),
                "xi": dyn._barostat._xi.tolist(), "p_xi": dyn._barostat._p_xi.tolist(), "eps": dyn._eps,
                "p_eps": dyn._p_eps, "cell0": np.asarray(dyn._cell0).tolist(), "volume0": dyn._volume0}
    if hasattr(dyn, "_thermostat"):
        return {"eta": dyn._thermostat._eta.tolist(), "p_eta": dyn._thermostat._p_eta.tolist()}
    if hasattr(dyn, "transferred_energy"):
        return {"transferred_energy": dyn.transferred_energy}
    return {}


def _restore_thermostat(dyn, state: dict) -> None:
    if "eta" in state:
        dyn._thermostat._eta = np.asarray(state["eta"], float)
        dyn._thermostat._p_eta = np.asarray(state["p_eta"], float)
    if "eps" in state:
        dyn._barostat._xi = np.asarray(state["xi"], float)
        dyn._barostat._p_xi = np.asarray(state["p_xi"], float)
        dyn._eps, dyn._p_eps = float(state["eps"]), float(state["p_eps"])
        dyn._cell0, dyn._volume0 = np.asarray(state["cell0"], float), float(state["volume0"])
    if "transferred_energy" in state:
        dyn.transferred_energy = state["transferred_energy"]


def _conserved(dyn, e_pot: float, e_kin: float) -> float:
    """The integrator's conserved quantity (eV): E_tot for NVE, plus the thermostat's energy for NVT; NaN for Langevin."""
    if hasattr(dyn, "get_conserved_energy"):
        return dyn.get_conserved_energy()
    if hasattr(dyn, "transferred_energy"):
        return e_pot + e_kin - dyn.transferred_energy
    if dyn.__class__.__name__ == "Langevin":
        return math.nan
    return e_pot + e_kin


def drift_mev_per_atom_ps(rows: list[dict], n_atoms: int, column: str = "E_conserved_eV") -> float:
    """Slope of a linear fit of ``column`` per atom vs time, in meV/atom/ps (NaN if undefined)."""
    t = np.array([r["time_fs"] for r in rows]) / 1000.0
    e = np.array([r[column] for r in rows]) / n_atoms * 1000.0
    if len(t) < 2 or not np.all(np.isfinite(e)):
        return math.nan
    return float(np.polyfit(t, e, 1)[0])


def shot_noise_heating(noise_var: float, opt: MDOptions, masses: np.ndarray, temperature: float | None = None) -> dict:
    """What white force noise of variance ``noise_var`` (eV/Å)^2 per Cartesian component, fresh at every step,
    does to a run (masses in amu). Velocity Verlet kicks each momentum by dt x noise per step, so the kinetic
    energy grows by 3 noise_var dt^2 / 2m per atom per step: ``heating_mev_per_atom_ps``, the drift of the
    total energy in NVE, heat that a thermostat has to remove. A Langevin thermostat of friction gamma balances
    it at ``langevin_T_shift_K`` = noise_var dt / (2 m gamma k_B) above its target (fluctuation-dissipation: the
    noise adds noise_var dt to the thermostat's 2 m gamma k_B T of momentum diffusion per unit time). Given the
    run's ``temperature`` (K), also the random walk that the kicks' work v . noise dt gives the total energy
    (first order in the noise, so over short runs larger than the drift): ``energy_walk_mev_per_atom_sqrt_ps``,
    the standard deviation of E_tot / N after 1 ps, sqrt(3 k_B T noise_var dt^2 / (m N)) per step."""
    dt = opt.timestep * units.fs
    inv_m = float(np.mean(1.0 / np.asarray(masses, float)))
    steps_per_ps = 1000.0 / opt.timestep
    out = {"heating_mev_per_atom_ps": 3.0 * noise_var * dt**2 / 2.0 * inv_m * steps_per_ps * 1000.0}
    if temperature is not None:
        walk_var = 3.0 * units.kB * temperature * noise_var * dt**2 * inv_m / len(masses) * steps_per_ps
        out["energy_walk_mev_per_atom_sqrt_ps"] = math.sqrt(walk_var) * 1000.0
    if opt.ensemble == "nvt" and opt.thermostat == "langevin" and opt.friction > 0:
        out["langevin_T_shift_K"] = noise_var * dt * inv_m / (2.0 * (opt.friction / units.fs) * units.kB)
    return out


def _unstable(atoms: Atoms, temperature: float, force_dev: float | None, min_pair: float, opt: MDOptions,
              volume0: float) -> str | None:
    if not np.all(np.isfinite(atoms.get_positions())):
        return "non-finite positions"
    if opt.max_force_dev is not None and force_dev > opt.max_force_dev:
        return (f"committee force deviation {force_dev:.3f} eV/Å exceeds max_force_dev {opt.max_force_dev:g}: the "
                "structure has left what the committee agrees on")
    if opt.ensemble == "npt" and not 1 / opt.max_volume_factor <= atoms.get_volume() / volume0 <= opt.max_volume_factor:
        return (f"volume {atoms.get_volume() / volume0:.2f} x the starting volume (the model has no stable density "
                f"at this pressure and temperature: trained at one density?)")
    if temperature > opt.max_temperature_factor * opt.temperature:
        return f"temperature {temperature:.0f} K exceeds {opt.max_temperature_factor:g} x target"
    if min_pair < opt.min_distance:   # (min_distance 0: the check is off)
        return f"two atoms {min_pair:.2f} Å apart (< {opt.min_distance} Å)"
    return None


def _pair_fields(log_path: Path, resuming: bool, coverage: dict | None) -> list[str]:
    """The closest-pair columns of this run's log: a resumed log keeps the ones it has (logs written before
    they existed have none)."""
    fields = PAIR_FIELDS if coverage is not None else PAIR_FIELDS[:1]
    if resuming and log_path.exists():
        header = log_path.read_text().split("\n", 1)[0].split(",")
        fields = [f for f in PAIR_FIELDS if f in header]
    return fields


def _pair_summary(rows: list[dict], coverage: dict | None) -> dict:
    """The run's closest pair, and with a coverage how many log rows held a pair closer than the training data."""
    if not rows or "min_pair_A" not in rows[0]:
        return {}
    d = np.array([r["min_pair_A"] for r in rows])
    if not np.isfinite(d).any():   # no pair within REACH in any row
        return {}
    k = int(np.nanargmin(d))
    out = {"min_pair_A": float(d[k]), "min_pair_step": int(rows[k]["step"])}
    if coverage is not None and "pair_margin_A" in rows[0]:
        below = [r for r in rows if r["pair_margin_A"] < 0]
        out.update(training_coverage=coverage, rows_below_training=len(below), rows=len(rows),
                   first_step_below_training=int(below[0]["step"]) if below else None)
    return out


def run_md(atoms: Atoms, calculator, opt: MDOptions, out_dir: str | Path, resume: bool = False,
           progress: Callable[[int, int], None] | None = None, committee: list | None = None,
           coverage: dict | None = None) -> dict:
    """Run (or resume) MD of ``atoms`` with ``calculator``; writes log, trajectory, checkpoint, summary into out_dir.
    ``committee``: ASE calculators of the models named in ``opt.committee``, same order (they only watch).
    ``coverage``: the model's training coverage (:func:`.coverage.coverage_of`); the log then says where the
    structure holds a pair closer than the training data did.

    Returns the summary: steps done, whether it stayed stable, mean T, drift of the conserved energy."""
    opt.validate()
    committee = list(committee or [])
    if len(committee) != len(opt.committee):
        raise HQCError(f"{len(opt.committee)} committee members named in the options, {len(committee)} calculators given")
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(opt.seed)
    shot = bool(getattr(calculator, "shot_based", False))
    if opt.ensemble == "npt" and not atoms.pbc.all():
        raise HQCError("npt needs a periodic structure (pbc=True with a cell)")
    if opt.compensate_noise and not shot:
        raise HQCError("compensate_noise needs measured forces (a shot-based calculator, md --backend ...)")
    if opt.ensemble == "npt" and shot:
        raise HQCError("npt with shot-based forces is not supported (the barostat would need measured stress at "
                       "every step); run nvt or nve, or npt with the exact engine")
    ckpt = read_resume_checkpoint(ckpt_path, resume, "MD")
    if ckpt is not None:
        try:
            # options added later (pressure, pdamp) are absent from older checkpoints: they ran with the defaults
            check_same_options(ckpt_path, {**asdict(MDOptions()), **ckpt["options"]}, asdict(opt),
                               ckpt["step"])
            if ckpt["n_atoms"] != len(atoms):
                raise HQCError(f"{ckpt_path}: {ckpt['n_atoms']} atoms, the structure has {len(atoms)}")
            if "cell" in ckpt:   # checkpoints before NPT existed have none; their cell never changed
                atoms.set_cell(np.asarray(ckpt["cell"]), scale_atoms=False)
            atoms.set_positions(np.asarray(ckpt["positions"]))
            atoms.set_momenta(np.asarray(ckpt["momenta"]))
            rng.bit_generator.state = ckpt["rng_state"]
            if shot:   # the measurement of the checkpointed structure is repeated exactly (same noise state)
                calculator.set_noise_state(ckpt["noise_state"])
            start, elapsed = ckpt["step"], ckpt["wall_seconds"]
        except (KeyError, TypeError, ValueError) as exc:
            raise HQCError(f"{ckpt_path}: unreadable MD checkpoint ({exc}); start a new output folder") from None
    else:
        if not np.any(atoms.get_momenta()):
            thermalize_momenta(atoms, opt.temperature, rng=rng)
            Stationary(atoms)
        start, elapsed = 0, 0.0
    dyn = _integrator(atoms, opt, rng)
    if start:
        _restore_thermostat(dyn, ckpt["thermostat"])
    npt = opt.ensemble == "npt"
    volume0 = dyn._volume0 if npt else None   # the starting cell's (restored with the barostat after a resume)
    fields = (LOG_FIELDS + (NPT_FIELDS if npt else []) + (COMMITTEE_FIELDS if committee else [])
              + (SHOT_FIELDS if shot else []) + (COMPENSATION_FIELDS if opt.compensate_noise else []))
    pair_fields = _pair_fields(out / LOG, bool(start), coverage)
    fields += pair_fields
    masses = atoms.get_masses()
    log = StepLog(out / LOG, fields, resume_step=start if start else None)
    traj = StepTrajectory(out / TRAJECTORY, resume_step=start if start else None)
    n = len(atoms)
    reason = None

    def record(step: int) -> tuple[float, float | None, float]:
        """Log a row; returns the temperature, the committee's largest force deviation (None without one) and the
        closest pair (Å; inf if none within REACH)."""
        if shot:
            atoms.get_forces()   # energy and forces in one measurement (an energy alone would be a second one)
        e_pot, e_kin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        temperature = atoms.get_temperature()
        extra, force_dev = {}, None
        if npt:
            extra = {"volume_A3": atoms.get_volume(), "density_g_cm3": density_g_cm3(atoms),
                     "P_GPa": float(pressure_gpa(atoms.get_stress(include_ideal_gas=True)))}
        if committee:
            frozen = atoms.copy()   # the members see the structure, not the integrator's atoms
            forces = [atoms.get_forces()] + [m.get_forces(frozen) for m in committee]
            energies = [e_pot] + [m.get_potential_energy(frozen) for m in committee]
            force_dev = float(force_deviation(forces).max())
            extra.update(max_force_dev_eV_A=force_dev, energy_std_meV_atom=float(np.std(energies)) / n * 1000.0)
        if shot:
            noise = atoms.get_forces() - calculator.results["exact_forces"]
            extra.update(E_pot_exact_eV=calculator.results["exact_energy"],
                         force_noise_rms_eV_A=float(np.sqrt(np.mean(noise**2))),
                         force_noise_est_eV_A=math.sqrt(calculator.results["force_noise_var"]))
        if opt.compensate_noise:
            extra["T_thermostat_K"] = dyn.temp / units.kB
        pairs = closest_pairs(atoms, max(REACH, opt.min_distance))
        min_pair = min(pairs.values(), default=math.inf)
        if "min_pair_A" in pair_fields:
            extra["min_pair_A"] = min_pair if pairs else math.nan
        if "pair_margin_A" in pair_fields:
            extra["pair_margin_A"] = pair_margin(pairs, coverage) if coverage is not None else math.nan
        log.add(step, time_fs=step * opt.timestep, T_K=temperature, E_pot_eV=e_pot, E_kin_eV=e_kin,
                E_tot_eV=e_pot + e_kin, E_conserved_eV=_conserved(dyn, e_pot, e_kin), **extra)
        return temperature, force_dev, min_pair

    def save(step: int) -> None:
        log.flush()
        traj.flush()
        atomic_write_json({"step": step, "n_atoms": n, "positions": atoms.get_positions().tolist(),
                           "cell": np.asarray(atoms.cell).tolist(),
                           "momenta": atoms.get_momenta().tolist(), "thermostat": _thermostat_state(dyn),
                           "rng_state": rng.bit_generator.state, "options": asdict(opt),
                           **({"noise_state": calculator.noise_state} if shot else {}),
                           "wall_seconds": elapsed + t_last_step - t0}, ckpt_path)

    # wall time counts up to the last step: re-running a finished run (to re-read its summary) adds nothing
    t0 = t_last_step = time.perf_counter()
    if start == 0:
        record(0)
        traj.add(atoms, 0)
    step = start
    while step < opt.steps:
        if opt.compensate_noise:
            # this structure's estimated noise variance (unbiased), so the total random force has the target's
            atoms.get_forces()
            shift = shot_noise_heating(calculator.results["force_noise_var"], opt, masses)["langevin_T_shift_K"]
            if shift >= opt.temperature:
                reason = (f"shot noise of the forces ({math.sqrt(calculator.results['force_noise_var']):.2f} eV/Å per "
                          f"component) heats by {shift:.0f} K, more than the thermostat can absorb at "
                          f"{opt.temperature:g} K: use more shots or a larger friction")
                save(step)
                break
            dyn.set_temperature(temperature_K=opt.temperature - shift)
        dyn.step()
        step += 1
        if step % opt.log_every == 0 or step == opt.steps:
            reason = _unstable(atoms, *record(step), opt=opt, volume0=volume0)
        if step % opt.traj_every == 0:
            traj.add(atoms, step)
        t_last_step = time.perf_counter()
        if step % opt.checkpoint_every == 0 or step == opt.steps or reason:
            save(step)
        if progress is not None:
            progress(step, opt.steps)
        if reason:
            break
    rows = log.rows()
    tail = rows[len(rows) // 5:]   # the first fifth is equilibration
    temps = np.array([r["T_K"] for r in tail])
    summary = {"steps": step, "time_ps": step * opt.timestep / 1000.0, "stable": reason is None,
               "unstable_reason": reason, "n_atoms": n, "mean_T_K": float(temps.mean()), "std_T_K": float(temps.std()),
               "drift_conserved_mev_per_atom_ps": drift_mev_per_atom_ps(rows, n),
               "wall_seconds": elapsed + t_last_step - t0, "options": asdict(opt)}
    # the exact potential energy of the visited states where the forces were measured (the measured one is noisier)
    e_pot = "E_pot_exact_eV" if shot else "E_pot_eV"
    series = {"T_K": temps, f"{e_pot}_per_atom": [r[e_pot] / n for r in tail]}
    if npt:   # an NPT run's result is its density: its mean needs the same autocorrelation-aware error bar
        series.update(density_g_cm3=[r["density_g_cm3"] for r in tail], P_GPa=[r["P_GPa"] for r in tail])
    summary["averages"] = averages(series, opt.log_every)
    summary["error_bar_check"] = error_bar_check(series, summary["averages"])
    if npt:   # also without error bars: a run too short or unstable for them still reports its means
        summary.update(mean_density_g_cm3=float(np.mean(series["density_g_cm3"])), mean_P_GPa=float(np.mean(series["P_GPa"])),
                       std_density_g_cm3=float(np.std(series["density_g_cm3"])))
    if committee:
        dev = np.array([r["max_force_dev_eV_A"] for r in rows])
        summary.update(max_force_dev_max_eV_A=float(dev.max()), max_force_dev_median_eV_A=float(np.median(dev)))
    if shot:
        # the prediction uses the estimated shot noise: a device's systematic force error is no random kick
        est_var = float(np.mean([r["force_noise_est_eV_A"] ** 2 for r in rows]))
        exact_total = [{"time_fs": r["time_fs"], "E": r["E_pot_exact_eV"] + r["E_kin_eV"]} for r in rows]
        summary.update(force_noise_rms_eV_A=math.sqrt(float(np.mean([r["force_noise_rms_eV_A"] ** 2 for r in rows]))),
                       force_noise_est_eV_A=math.sqrt(est_var),
                       drift_exact_total_mev_per_atom_ps=drift_mev_per_atom_ps(exact_total, n, "E"),
                       predicted=shot_noise_heating(est_var, opt, masses, summary["mean_T_K"]))
    if opt.compensate_noise:
        summary["mean_T_thermostat_K"] = float(np.mean([r["T_thermostat_K"] for r in rows[len(rows) // 5:]]))
    summary.update(_pair_summary(rows, coverage))
    atomic_write_json(summary, out / SUMMARY)
    return summary
