"""DFT on the dense liquid an NPT run made: does the density fine-tune's pressure hold there?

    bash runs/density/npt/run.sh                      # NPT at 10 GPa, 3000 K: the source model, the fine-tune, with ZBL,
                                                      # with ZBL and pulled-pair DFT (2 seeds)
    python docs/evidence/cp2k_npt.py run [--frames -1,-6]   # CP2K on frames of every trajectory (5-10+ min each)
    python docs/evidence/cp2k_npt.py compare          # -> docs/evidence/cp2k_npt.json

cp2k_density.py checks the models on test frames scaled to other densities, which are compressed without
relaxing. An NPT run at high pressure makes relaxed dense liquid instead. `run` takes frames of every NPT
trajectory (runs/density/npt/<name>_p10/md_traj.extxyz) and finds the converged OT minimum of the data's own
functional there (cp2k_label_noise.py's recipe), keeping energy, forces and the analytical stress in
docs/evidence/cp2k_stress/npt.<name>.frame<k>.converged.json. `compare` evaluates every model on every such frame:
the virial pressure (the configurational part, what DFT's stress is; the kinetic part is the same for all) against
DFT's, and the force RMSE.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.io import read

from cp2k_label_noise import converged_single_point
from cp2k_stress import HERE, ROOT, WORK, cubic_input, run_compare_main
from hqc_qiskit.checkpoint import atomic_write_json
from hqc_qiskit.coverage import coverage_of, frames_outside
from hqc_qiskit.data.dataset import closest_pair, density_g_cm3
from hqc_qiskit.metrics import pressure_gpa

NPT = ROOT / "runs" / "density" / "npt"
# the NPT runs of runs/density/npt/run.sh (name: the model that drove it); every model is compared on every frame
TRAJECTORIES = {"source": "runs/small_l2_hqc_cz_long", "finetuned": "runs/density/small_l2_hqc_cz_density_wide_valstress",
                "zbl": "runs/density/small_l2_hqc_cz_density_zbl",
                # ZBL + 15 DFT frames with a pair pulled to 1.4-1.8 Å (runs/density/finetune_closepair_dense_zbl.yaml)
                "closepair": "runs/density/small_l2_hqc_cz_density_closepair_dense_zbl",
                "closepair_seed1": "runs/density/small_l2_hqc_cz_density_closepair_dense_zbl_seed1"}


def result_path(name: str, frame: int) -> Path:
    return WORK / f"npt.{name}.frame{frame}.converged.json"


def trajectory_path(name: str) -> Path:
    return NPT / f"{name}_p10" / "md_traj.extxyz"


def trajectory(name: str) -> list:
    path = trajectory_path(name)
    if not path.exists():
        raise SystemExit(f"{path.relative_to(ROOT)} is missing: run `bash runs/density/npt/run.sh` first")
    return read(path, ":")


def run(frames: list[int], np_: int = 2) -> None:
    """Converged single points of trajectory frames ``frames`` (negative: from the end) of each NPT run (resumable:
    done frames are skipped)."""
    WORK.mkdir(exist_ok=True)
    trajectories = {name: trajectory(name) for name in TRAJECTORIES}
    for k in frames:   # the frames in turn, each of every run (the first frames asked for come first)
        for name, traj in trajectories.items():
            index = k % len(traj)
            path = result_path(name, index)
            if path.exists():
                print(f"{name} frame {index}: {path.name} exists, skipped")
                continue
            atoms = traj[index]
            project = f"Si_npt_{name}{index}"
            parsed, smeared = converged_single_point(cubic_input(atoms, project), project, np_)
            parsed.update(trajectory=str(trajectory_path(name).relative_to(ROOT)), frame=index,
                          step=int(atoms.info.get("step", -1)), volume_a3=atoms.get_volume(),
                          density_g_cm3=density_g_cm3(atoms), eps_scf=1e-6, smeared_energy_ev=smeared["energy_ev"],
                          smeared_scf_steps=smeared["scf_steps"])
            atomic_write_json(parsed, path)
            print(f"{name} frame {index} ({parsed['density_g_cm3']:.3f} g/cm³): pressure "
                  f"{pressure_gpa(parsed['stress_ev_a3']):.2f} GPa", flush=True)


def npt_density(name: str) -> dict:
    """The NPT run's mean density and pressure over the last 80% of its log with autocorrelation-aware error bars
    (what `hqc-qiskit md` now writes under `averages`)."""
    from hqc_qiskit.autocorr import series_stats
    from hqc_qiskit.runlog import read_rows

    run = NPT / f"{name}_p10"
    rows = read_rows(run / "md_log.csv")
    stride = json.loads((run / "md_summary.json").read_text())["options"]["log_every"]
    tail = rows[len(rows) // 5:]
    return {column: series_stats([r[column] for r in tail], stride).as_dict() for column in ("density_g_cm3", "P_GPa")}


TRAINING_CLOSEST_PAIR = 1.87   # Å: the closest pair in the shipped training file (hqc-qiskit data info)


def closest_pairs(frames: list, run_dir: str) -> dict:
    """Closest pair (Å) of every frame of an NPT trajectory (one every 200 steps): the smallest, and how many
    frames hold a pair closer than any in the training data of the model that drove it (``run_dir``; where its
    repulsion is extrapolated), or lie outside its training densities."""
    distances = [closest_pair(atoms, 4.0)[2] for atoms in frames]
    coverage = coverage_of(ROOT / run_dir)
    outside = frames_outside(frames, coverage)
    return {"frames": len(distances), "min_a": min(distances), "median_a": float(np.median(distances)),
            "training_closest_a": coverage["closest_pair_A"]["Si-Si"], "training_density_g_cm3": coverage["density_g_cm3"],
            "frames_below_training": outside["frames_below_training"],
            "frames_outside_training_densities": outside["frames_outside_densities"]}


def compare() -> dict:
    """Every NPT run's density and closest pairs, and every model's virial pressure and forces against DFT on every
    computed NPT frame; writes cp2k_npt.json."""
    from hqc_qiskit.calculator import HQCCalculator

    calcs = {name: HQCCalculator(ROOT / run_dir, dtype="float64") for name, run_dir in TRAJECTORIES.items()}
    trajectories = {name: trajectory(name) for name in TRAJECTORIES}   # each read once
    report = {"models": TRAJECTORIES, "npt": {name: npt_density(name) for name in TRAJECTORIES},
              "closest_pairs": {name: closest_pairs(traj, TRAJECTORIES[name]) for name, traj in trajectories.items()},
              "frames": []}
    for name, stats in report["npt"].items():
        rho, pressure = stats["density_g_cm3"], stats["P_GPa"]
        print(f"NPT at 10 GPa with {TRAJECTORIES[name]}: density {rho['mean']:.3f} ± {rho['stderr']:.3f} g/cm³ (fluctuating by "
              f"{rho['std']:.3f}; {rho['n_effective']:.0f} independent samples), pressure {pressure['mean']:+.2f} ± "
              f"{pressure['stderr']:.2f} GPa")
        pairs = report["closest_pairs"][name]
        print(f"  closest pair over its {pairs['frames']} trajectory frames: {pairs['min_a']:.2f} Å; "
              f"{pairs['frames_below_training']} frames closer than its training data's {pairs['training_closest_a']:.3f} Å, "
              f"{pairs['frames_outside_training_densities']} outside its training densities")
    for name, traj in trajectories.items():
        results = sorted((json.loads(p.read_text()) for p in WORK.glob(f"npt.{name}.frame*.converged.json")),
                         key=lambda d: d["frame"])
        for dft in results:
            atoms = traj[dft["frame"]]
            row = {"trajectory": name, "frame": dft["frame"], "step": dft["step"], "density_g_cm3": dft["density_g_cm3"],
                   "closest_pair_a": closest_pair(atoms, 4.0)[2],
                   "dft_force_rms_ev_a": float(np.sqrt(np.mean(np.square(dft["forces_ev_a"])))),
                   "dft_pressure_gpa": float(pressure_gpa(dft["stress_ev_a3"])),
                   "pressure_error_gpa": {}, "force_rmse_ev_a": {}}
            for model, calc in calcs.items():
                copy = atoms.copy()
                copy.calc = calc
                row["pressure_error_gpa"][model] = float(pressure_gpa(copy.get_stress(voigt=False))) - row["dft_pressure_gpa"]
                row["force_rmse_ev_a"][model] = float(np.sqrt(np.mean((copy.get_forces() - np.array(dft["forces_ev_a"])) ** 2)))
            report["frames"].append(row)
            print(f"{name} trajectory, frame {row['frame']} ({row['density_g_cm3']:.3f} g/cm³, closest pair "
                  f"{row['closest_pair_a']:.2f} Å, DFT force RMS {row['dft_force_rms_ev_a']:.2f} eV/Å): DFT virial pressure "
                  f"{row['dft_pressure_gpa']:+.2f} GPa; model - DFT: " + ", ".join(
                      f"{m} {row['pressure_error_gpa'][m]:+.2f} GPa (F RMSE {row['force_rmse_ev_a'][m]:.3f} eV/Å)"
                      for m in TRAJECTORIES))
    if not report["frames"]:
        raise SystemExit(f"no NPT frames computed in {WORK}: run `python {Path(__file__).relative_to(ROOT)} run` first")
    atomic_write_json(report, HERE / "cp2k_npt.json")
    return report


def main() -> None:
    run_compare_main(__doc__, run, compare, "--frames", "-1", "trajectory frames (negative: from the end)",
                     run_help="converged CP2K single points of frames of every NPT trajectory",
                     compare_help="every model's pressure and forces against DFT on those frames")


if __name__ == "__main__":
    main()
