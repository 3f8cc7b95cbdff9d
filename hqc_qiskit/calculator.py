"""ASE calculator for a trained hqc-qiskit model (exact engine): energy, free_energy, forces, stress."""

from __future__ import annotations

from pathlib import Path

from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .checkpoint import load_model
from .data.graph import atoms_to_graph, collate, to_device
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
