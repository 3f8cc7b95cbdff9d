"""Is the 2,000-shot aer energy unbiased at every volume the isobaric chain visits? For 8 saved samples of
zbl_p10_mc_aer2000_penalty spanning its volumes: 300 estimates each against the exact engine's energy, and their
spread against the reported standard error (docs/results.md "Isobaric Monte Carlo"; about 2 minutes).

    python runs/density/npt/shot_estimator_check.py
"""
from pathlib import Path

import ase.io
import numpy as np

from hqc_qiskit.checkpoint import load_model
from hqc_qiskit.quantum.backends import make_backend
from hqc_qiskit.quantum.estimate import estimate_energy, readout_problem

root = Path(__file__).resolve().parents[3]
model = load_model(root / "runs/density/small_l2_hqc_cz_density_zbl").double()
frames = ase.io.read(root / "runs/density/npt/zbl_p10_mc_aer2000_penalty/mc_traj.extxyz.gz", ":")
volumes = np.array([a.get_volume() for a in frames])
order = np.argsort(volumes)
backend, rng = make_backend("aer"), np.random.default_rng(5)
for i in order[np.linspace(0, len(order) - 1, 8).astype(int)]:
    atoms = frames[i]
    atoms.calc = None
    problem = readout_problem(model, atoms)
    estimates = [estimate_energy(model, atoms, backend, 2000, rng=rng, problem=problem) for _ in range(300)]
    e, s = np.array([x.energy for x in estimates]), np.array([x.stderr for x in estimates])
    bias, err = e.mean() - problem.exact_energy, e.std(ddof=1) / np.sqrt(len(e))
    print(f"V {volumes[i]:7.1f} A^3: mean - exact {bias:+.4f} +- {err:.4f} eV ({bias / err:+.1f} sigma); "
          f"spread {e.std(ddof=1):.4f} eV, reported s {s.mean():.4f} eV")
