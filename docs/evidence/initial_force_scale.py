"""How flat is an untrained model? Force std and energy offset at initialisation (docs/results.md, HQC collapse).

For the study configs and seeds 0 and 1: builds the model exactly as the trainer does (seeded, E0 fitted
on the training set), and prints, on one batch of 20 training structures, the std of the predicted force
components (eV/Å; the DFT forces have std ~1.2) and the mean energy error (eV per structure).
Usage: python docs/evidence/initial_force_scale.py [config ...]   (default: small_cmlp small_hqc_basic small_hqc_cz)
"""

import sys
from pathlib import Path

import torch

from hqc_qiskit.config import load_config
from hqc_qiskit.data.graph import collate, to_device
from hqc_qiskit.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(2)
for name in sys.argv[1:] or ["small_cmlp", "small_hqc_basic", "small_hqc_cz"]:
    for seed in (0, 1):
        cfg = load_config(ROOT / "runs" / f"{name}.yaml", [f"seed={seed}", "data.max_train=20", "output_dir=/tmp/initial_force_scale"])
        trainer = Trainer(cfg, progress=False, overwrite=True)   # a scratch directory
        batch = to_device(collate(trainer.graphs.train), "cpu", torch.float32)
        out = trainer.model(batch, compute_forces=True)
        print(f"{name:18s} seed {seed}: force std {out['forces'].std().item():.2e} eV/Å, "
              f"mean energy error {(out['energy'] - batch['energy']).mean().item():+.1f} eV/structure")
