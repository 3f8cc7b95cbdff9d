"""ASE calculators for a trained hqc-qiskit model: exact (energy, free_energy, forces, stress) and
shot-based (energy, forces and stress with their shot-noise standard errors, on any backend)."""

from __future__ import annotations

import copy
from pathlib import Path

from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .checkpoint import load_model
from .data.graph import atoms_to_graph, collate, to_device
from .errors import ConfigError
from .torch_device import resolve_device


class HQCCalculator(Calculator):
    """ASE Calculator from a run directory or checkpoint. Energies eV, forces eV/Å, stress eV/Å^3 (periodic
    structures; ASE's Voigt order and sign, computed only when asked for).

    >>> calc = HQCCalculator("runs/quick")          # doctest: +SKIP
    >>> atoms.calc = calc; atoms.get_potential_energy()  # doctest: +SKIP

    ``dtype`` ('float32' or 'float64') overrides the model's training precision.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model_path: str | Path | None = None, model=None, device: str = "cpu", which: str = "best",
                 dtype: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.device = resolve_device(device)
        if model is None:
            if model_path is None:
                raise ValueError("give model_path (run directory or checkpoint) or model")
            model = load_model(model_path, which=which)
        if dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, not {dtype!r}")
        self.model = model.to(self.device).eval()
        if dtype is not None:   # float64 for long NVE runs: float32 forces drift measurably
            self.model = self.model.double() if dtype == "float64" else self.model.float()  # keeps complex buffers
        self.dtype = next(self.model.parameters()).dtype
        self._stress_wanted = False   # stress costs a few percent: computed once somebody has asked for it

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        cfg = self.model.config
        if "stress" in properties:
            if not self.atoms.pbc.all():
                raise PropertyNotImplementedError("stress needs a periodic structure (pbc=True with a cell)")
            self._stress_wanted = True   # a barostat asks for forces, then stress: compute both in one pass
        stress = self._stress_wanted and bool(self.atoms.pbc.all())
        graph = collate([atoms_to_graph(self.atoms, cfg.cutoff, cfg.species)])
        out = self.model(to_device(graph, self.device, self.dtype), compute_forces=True, compute_stress=stress)
        energy = float(out["energy"].detach().cpu().double()[0])
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": out["forces"].detach().cpu().double().numpy()}
        if stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(out["stress"][0].detach().cpu().double().numpy())


class HQCShotCalculator(Calculator):
    """ASE Calculator whose energy, forces and stress are measured: every readout circuit of the structure runs
    on ``backend`` (a name as in ``hqc-qiskit backends``, or a Backend from ``quantum.backends.make_backend``
    for profiles, noise scales, mitigation and runtime options) with ``shots`` shots per circuit on average.

    ``results["energy"]`` (eV) is the shot-based estimate, ``results["energy_uncertainty"]`` its standard
    error (eV, shot noise only; 0 for ``exact``), ``results["exact_energy"]`` the exact engine's energy (eV).
    Asking for forces (eV/Å) or stress (eV/Å^3, periodic structures, ASE's Voigt order and sign) also runs
    each circuit's 2n parameter-shifted copies (:mod:`hqc_qiskit.quantum.shot_forces`), so it costs 1 + 2n
    times the energy's circuits; ``results["forces_uncertainty"]`` (N, 3) and ``results["stress_uncertainty"]``
    (6,) are their standard errors unless ``force_uncertainty=False`` (which skips the few seconds of
    autograd that the errors need). A value once measured for a structure is kept: asking for forces after
    the energy adds the forces and leaves the energy as it was. ``last_estimate`` is the full
    :class:`~hqc_qiskit.quantum.estimate.EnergyEstimate` or
    :class:`~hqc_qiskit.quantum.shot_forces.ForceEstimate` (circuits, shots, QPU seconds, exact values).
    ``seed`` seeds the simulated shot noise: a calculator with the same seed repeats its sequence of estimates.

    ``results["exact_forces"]`` holds the exact engine's forces next to the measured ones, and
    ``results["force_noise_var"]`` the mean shot-noise variance of a force component ((eV/Å)^2; estimated by one
    random probe when ``force_uncertainty=False``, see :mod:`hqc_qiskit.quantum.shot_forces`).
    ``noise_state`` is the shot-noise generator's state before the latest calculation; after
    ``set_noise_state`` with it, the same structure gets the same measurement again (exact MD resume).

    >>> calc = HQCShotCalculator("runs/study_readouts/small_hqc_cz_s0", backend="aer", shots=50000, seed=0)  # doctest: +SKIP
    >>> atoms.calc = calc; atoms.get_potential_energy(), calc.results["energy_uncertainty"]  # doctest: +SKIP
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    shot_based = True

    def __init__(self, model_path: str | Path | None = None, model=None, backend="aer", shots: int = 50000,
                 allocation: str = "uniform", seed: int | list[int] | None = None, which: str = "best",
                 force_uncertainty: bool = True, **kwargs):
        import numpy as np

        from .quantum.backends import Backend, make_backend
        from .quantum.estimate import ALLOCATIONS, require_quantum_readouts

        super().__init__(**kwargs)
        if model is None:
            if model_path is None:
                raise ValueError("give model_path (run directory or checkpoint) or model")
            model = load_model(model_path, which=which)
        # float64 on the CPU: the circuits' inputs are handed to the backends as float64 arrays anyway
        self.model = model.to("cpu").double().eval()
        require_quantum_readouts(self.model)
        if allocation not in ALLOCATIONS:
            raise ConfigError(f"allocation must be one of {ALLOCATIONS}, not {allocation!r}")
        if not isinstance(shots, (int, np.integer)) or shots < 1:
            raise ConfigError(f"shots must be a positive integer (per circuit, on average), got {shots!r}")
        self.backend = backend if isinstance(backend, Backend) else make_backend(backend)
        self.shots, self.allocation = int(shots), allocation
        self.force_uncertainty = bool(force_uncertainty)
        self.rng = np.random.default_rng(seed)
        self.noise_state = copy.deepcopy(self.rng.bit_generator.state)
        self.last_estimate = None

    def set_noise_state(self, state: dict) -> None:
        """Put the shot-noise generator back to ``state`` (a ``noise_state``) and forget the last results."""
        self.rng.bit_generator.state = copy.deepcopy(state)
        self.noise_state = copy.deepcopy(state)
        self.reset()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from .quantum.estimate import estimate_energy
        from .quantum.shot_forces import estimate_forces

        kept = {} if system_changes else dict(self.results)   # same structure: what was measured stays
        super().calculate(atoms, properties, system_changes)
        self.noise_state = copy.deepcopy(self.rng.bit_generator.state)
        if "stress" in properties and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a periodic structure (pbc=True with a cell)")
        if "forces" not in properties and "stress" not in properties:
            est = estimate_energy(self.model, self.atoms, self.backend, self.shots, self.allocation, self.rng)
            results = {"energy": est.energy, "energy_uncertainty": est.stderr, "exact_energy": est.exact_energy}
        else:
            est = estimate_forces(self.model, self.atoms, self.backend, self.shots, self.allocation, self.rng,
                                  stress="stress" in properties, uncertainty=self.force_uncertainty)
            results = {"energy": est.energy, "energy_uncertainty": est.stderr,
                       "exact_energy": est.exact_energy, "forces": est.forces, "exact_forces": est.exact_forces,
                       "force_noise_var": est.force_noise_var}
            if est.forces_stderr is not None:
                results["forces_uncertainty"] = est.forces_stderr
            if est.stress is not None:
                results["stress"] = full_3x3_to_voigt_6_stress(est.stress)
                if est.stress_stderr is not None:   # sigma_yz and sigma_zy are one measurement (symmetric strain)
                    results["stress_uncertainty"] = full_3x3_to_voigt_6_stress(est.stress_stderr)
        results["free_energy"] = results["energy"]
        self.last_estimate = est
        self.results = {**results, **kept}
