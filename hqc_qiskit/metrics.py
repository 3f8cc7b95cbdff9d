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
