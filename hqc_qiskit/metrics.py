"""Error metrics. Energies per structure in eV, reported per atom in meV/atom; forces in eV/Å per component."""

from __future__ import annotations

import numpy as np


def energy_force_metrics(e_pred, e_ref, n_atoms, f_pred=None, f_ref=None) -> dict:
    """RMSE/MAE of E (meV/atom; plain and offset-free as the paper reports) and F (eV/Å).

    e_*: (B,) eV; n_atoms: (B,); f_*: (N, 3) eV/Å. The offset-free energy RMSE removes the mean
    error (a constant shift), as the paper's batch-mean alignment does.
    """
    e_pred, e_ref, n_atoms = (np.asarray(a, dtype=float) for a in (e_pred, e_ref, n_atoms))
    err = e_pred - e_ref                    # (B,) eV
    err_shifted = err - err.mean()
    out = {
        "rmse_e_mev_atom": float(np.sqrt(np.mean((err / n_atoms) ** 2)) * 1000),
        "mae_e_mev_atom": float(np.mean(np.abs(err / n_atoms)) * 1000),
        "rmse_e_offset_free_mev_atom": float(np.sqrt(np.mean((err_shifted / n_atoms) ** 2)) * 1000),
        "rmse_e_ev_structure": float(np.sqrt(np.mean(err**2))),
        "rmse_e_offset_free_ev_structure": float(np.sqrt(np.mean(err_shifted**2))),
        "n_structures": int(len(err)),
    }
    if f_pred is not None and f_ref is not None:
        ferr = np.asarray(f_pred, dtype=float) - np.asarray(f_ref, dtype=float)
        out["rmse_f_ev_a"] = float(np.sqrt(np.mean(ferr**2)))
        out["mae_f_ev_a"] = float(np.mean(np.abs(ferr)))
    return out


def pressure_gpa(stress) -> np.ndarray:
    """Pressure -tr(σ)/3 in GPa of stresses in eV/Å^3 with ASE's sign (positive pushes outwards), given as
    (..., 3, 3) tensors or (..., 6) Voigt vectors."""
    from ase.units import GPa

    s = np.asarray(stress, dtype=float)
    diagonal = s[..., :3] if s.shape[-1] == 6 else np.diagonal(s, axis1=-2, axis2=-1)
    return -diagonal.mean(axis=-1) / GPa


def stress_metrics(s_pred, s_ref) -> dict:
    """RMSE/MAE of the stress components (GPa) and RMSE of the pressure -tr(σ)/3 (GPa).

    s_*: (B, 3, 3) eV/Å^3 for the B frames that have a stress label."""
    from ase.units import GPa

    s_pred, s_ref = np.asarray(s_pred, dtype=float), np.asarray(s_ref, dtype=float)
    err = (s_pred - s_ref) / GPa
    p_err = pressure_gpa(s_pred - s_ref)
    return {"rmse_stress_gpa": float(np.sqrt(np.mean(err**2))), "mae_stress_gpa": float(np.mean(np.abs(err))),
            "rmse_pressure_gpa": float(np.sqrt(np.mean(p_err**2))), "n_stress_structures": int(len(err))}


def force_deviation(forces) -> np.ndarray:
    """Committee force deviation per atom, sqrt(mean_m |F_m - F_mean|^2) (eV/Å), of ``forces`` (M, n, 3) from
    M models: DP-GEN's per-atom ``devi_f``, population convention (divide by M)."""
    forces = np.asarray(forces, dtype=float)
    return np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=-1), axis=0))
