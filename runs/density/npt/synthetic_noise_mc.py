"""The isobaric chain of run_mc_shots.sh with the exact engine's energies plus Gaussian noise of a fixed standard
error (eV) drawn from the chain's generator, the current estimate reused: the same chain logic as the shot-based run
without aer. Does a chain whose only difference from the exact one is noise of this size come out at the exact
chain's density? (docs/results.md "Isobaric Monte Carlo".) --sigma 0 runs the exact chain with another seed;
--fixed-steps sets the step sizes instead of adapting them.

    python runs/density/npt/synthetic_noise_mc.py --sigma 0.16 --seed 0 --steps 60000 --out DIR
"""
import argparse
from pathlib import Path

from hqc_qiskit import mc_driver
from hqc_qiskit.checkpoint import load_model
from hqc_qiskit.data.dataset import read_structures
from hqc_qiskit.mc import Measurement

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--sigma", type=float, required=True, help="eV, standard error added to every energy")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--steps", type=int, default=60000)
parser.add_argument("--acceptance", default="penalty")
parser.add_argument("--absolute-target", action="store_true",
                    help="adapt towards the raw target acceptance (how the chains of run_mc_checks.sh ran)")
parser.add_argument("--fixed-steps", type=float, nargs=2, metavar=("DELTA", "MAX_DLNV"),
                    help="no adaptation: displacement delta (Å) and max_dlnv fixed from the first step")
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

root = Path(__file__).resolve().parents[3]
model = load_model(root / "runs/density/small_l2_hqc_cz_density_zbl").double()
atoms = read_structures(root / "data/si_liquid_3000K/si_liquid_3000K.test.extxyz.gz")[0]
exact_measure = mc_driver.energy_measure(model, atoms, None, mc_driver.MCOptions(ensemble="npt"))


class SyntheticGaussian:
    """Stands for a shot-based backend in run_mc: the summary then treats the energies as noisy estimates."""
    name = f"synthetic_gaussian_{args.sigma:g}eV"


def noisy(config, rng):
    exact = exact_measure(config, rng)
    if args.sigma == 0:
        return exact
    return Measurement(exact.energy + rng.normal(0.0, args.sigma), args.sigma)


mc_driver.energy_measure = lambda *_: noisy   # run_mc builds its measure with this; the chain logic is untouched
delta, max_dlnv = args.fixed_steps or (0.05, 0.01)
opt = mc_driver.MCOptions(steps=args.steps, temperature=3000.0, n_moved=5, delta=delta,
                          adapt_steps=0 if args.fixed_steps else 2000, acceptance=args.acceptance, seed=args.seed,
                          sample_every=200, checkpoint_every=500, ensemble="npt", pressure=10.0,
                          volume_probability=0.1, max_dlnv=max_dlnv, noise_scaled_target=not args.absolute_target)
summary = mc_driver.run_mc(model, atoms, SyntheticGaussian() if args.sigma else None, opt, args.out,
                           resume=(args.out / mc_driver.CHECKPOINT).exists())
rho = summary["averages"]["density_g_cm3"]
print(f"{args.out}: density {rho['mean']:.4f} +- {rho['stderr'] or float('nan'):.4f} g/cm3, acceptance {summary['acceptance_ratio']:.3f}, "
      f"volume {summary['volume_acceptance_ratio']:.3f}, max_dlnv {summary['final_max_dlnv']:.4f}, "
      f"{summary['wall_seconds']:.0f} s")
