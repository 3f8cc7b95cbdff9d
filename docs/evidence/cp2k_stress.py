"""DFT stress of test frames (CP2K, the data's own settings) against the stress of trained models.

The shipped data has energies and forces only, all at one density, so the models never saw a stress or a
volume change: their stress (1/V dE/dε by autograd) is an extrapolation. This script measures how good it is.

    bash scripts/install_cp2k.sh                                    # Debian's CP2K 2023.1
    python docs/evidence/cp2k_stress.py run --frames 0,1,2          # ~10 min per frame on 2 cores
    python docs/evidence/cp2k_stress.py volume-check --frame 1     # -dE/dV from two strained single points
    python docs/evidence/cp2k_label_noise.py run --frames 0,1,2                # the converged references
    python docs/evidence/cp2k_stress.py compare runs/quick runs/small_l2_cmlp_long ...

`run` writes one CP2K input per test frame into docs/evidence/cp2k_stress/ (the paper's cp2k.inp settings as in
cp2k_single_point_frame0.inp: PBE, DZVP-GTH, 400 Ry; plus STRESS_TENSOR ANALYTICAL), runs CP2K and keeps what it
printed for energy, forces and stress (`frame<k>.dft.json`); these from-scratch single points stop tens of meV
above the minimum of the SCF (see cp2k_label_noise.py, which writes converged ones, `frame<k>.converged.json`).
`compare` prints, per model, the RMSE of the stress components and of the pressure against DFT (the converged
results unless `--reference scratch`), and writes docs/evidence/cp2k_stress.json and the frames with CP2K's
labels (docs/evidence/cp2k_stress_frames.extxyz, which `hqc-qiskit evaluate` reads, stress included). Sign: ASE's (CP2K prints
the opposite sign; ASE's own CP2K calculator flips it the same way); units eV/Å^3 and GPa.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.units import Bohr, GPa, Hartree

from hqc_qiskit.metrics import pressure_gpa

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK = HERE / "cp2k_stress"
TEMPLATE = HERE / "cp2k_single_point_frame0.inp"
TEST = ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.test.extxyz.gz"


def cp2k_input(atoms, project: str) -> str:
    """The frame-0 evidence input with these coordinates and the analytical stress switched on."""
    text = TEMPLATE.read_text()
    coords = "\n".join(f" {s}  {x:.10f}  {y:.10f}  {z:.10f}" for s, (x, y, z) in
                       zip(atoms.get_chemical_symbols(), atoms.positions))
    text = re.sub(r"&COORD\n.*?\n(\s*)&END COORD", lambda m: f"&COORD\n{coords}\n{m.group(1)}&END COORD", text, flags=re.S)
    text = text.replace("PROJECT Si", f"PROJECT {project}")
    text = text.replace("STRESS_TENSOR NONE", "STRESS_TENSOR ANALYTICAL")
    # the paper's MAX_SCF 100 is not always enough from scratch (frame 0 of the test file was not converged
    # after 100 OT DIIS steps): only the iteration limit changes, not the level of theory
    text = text.replace("         MAX_SCF 100\n", "         MAX_SCF 400\n")
    text = text.replace("      &FORCES ON\n      &END FORCES\n   &END PRINT",
                        "      &FORCES ON\n      &END FORCES\n      &STRESS_TENSOR ON\n      &END STRESS_TENSOR\n   &END PRINT")
    assert "STRESS_TENSOR ANALYTICAL" in text and "&STRESS_TENSOR ON" in text and project in text and "MAX_SCF 400" in text
    return text


def cubic_input(atoms, project: str) -> str:
    """:func:`cp2k_input` for a structure in any cubic cell (an NPT frame, a scaled frame): the template's cell
    sides (the data's 10.862 Å box) replaced by the structure's."""
    side_a = atoms.cell.lengths()[0]
    if not np.allclose(atoms.cell[:], np.diag([side_a] * 3)):
        sys.exit(f"cubic_input expects a cubic cell, not {atoms.cell[:].tolist()}")
    text = cp2k_input(atoms, project)
    side = f"{side_a:.12f}"
    text = re.sub(r"(\s+[ABC] )(.*)", lambda m: m.group(1) + " ".join(
        side if float(v) != 0 else v for v in m.group(2).split()), text)
    assert text.count(side) == 3
    return text


def scaled_input(atoms, factor: float, project: str):
    """(atoms with cell and positions scaled isotropically by ``factor``, its CP2K input: :func:`cubic_input`).
    ``atoms`` must be in the data's cubic 10.862 Å box."""
    if not np.allclose(atoms.cell[:], np.diag([10.862] * 3)):
        sys.exit(f"scaled_input expects the data's cubic 10.862 Å cell, not {atoms.cell[:].tolist()}")
    from hqc_qiskit.data.dataset import scaled_copy

    scaled = scaled_copy(atoms, factor)
    return scaled, cubic_input(scaled, project)


def parse_output(text: str, n_atoms: int) -> dict:
    """Energy (eV), forces (eV/Å) and stress (3x3, ASE sign, eV/Å^3) from a CP2K output."""
    energy = float(re.findall(r"ENERGY\| Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+(\S+)", text)[-1]) * Hartree
    block = text[text.rindex("ATOMIC FORCES in [a.u.]"):].splitlines()[3:3 + n_atoms]
    forces = np.array([[float(v) for v in line.split()[3:6]] for line in block]) * Hartree / Bohr
    number = r"([-+]?\d+\.\d+E[-+]\d+)"
    rows = re.findall(rf"STRESS\|\s+([xyz])\s+{number}\s+{number}\s+{number}", text[text.rindex("Analytical stress tensor [GPa]"):])[:3]
    stress_gpa = np.array([[float(v) for v in row[1:]] for row in rows])
    converged = re.findall(r"SCF run converged in\s+(\d+) steps", text)
    return {"energy_ev": energy, "forces_ev_a": forces.tolist(), "stress_ev_a3": (-stress_gpa * GPa).tolist(),
            "scf_steps": int(converged[-1]) if converged else None}


# the DFT results a comparison can use: this script's from-scratch single points, or cp2k_label_noise.py's converged ones
REFERENCES = {"converged": "converged.json", "scratch": "dft.json"}


def run_cp2k(inp: Path, text: str, np_: int) -> str:
    """Write ``text`` to ``inp``, run CP2K on it (MPI, ``np_`` processes, in inp's folder), return its output."""
    out = inp.with_suffix(".out")
    inp.write_text(text)
    subprocess.run(["mpirun", "--allow-run-as-root", "-np", str(np_), "cp2k.popt", "-i", inp.name, "-o", out.name],
                   cwd=inp.parent, check=True)
    return out.read_text()


def pending_frames(frames: list[int], suffix: str):
    """(k, test frame k, result path WORK/frame<k>.<suffix>) for each frame whose result is not there yet."""
    from hqc_qiskit.data.dataset import load_labelled

    data = load_labelled(TEST)
    WORK.mkdir(exist_ok=True)
    for k in frames:
        result = WORK / f"frame{k}.{suffix}"
        if result.exists():
            print(f"frame {k}: {result} exists, skipped")
            continue
        yield k, data[k], result


def run(frames: list[int], np_: int = 2) -> None:
    for k, atoms, result in pending_frames(frames, "dft.json"):
        out = WORK / f"frame{k}.out"
        parsed = parse_output(run_cp2k(WORK / f"frame{k}.inp", cp2k_input(atoms, f"Si_frame{k}"), np_), len(atoms))
        if parsed["scf_steps"] is None:
            sys.exit(f"frame {k}: the SCF did not converge; see {out}")
        parsed.update(frame=k, file=str(TEST.relative_to(ROOT)), label_energy_ev=atoms.get_potential_energy())
        result.write_text(json.dumps(parsed))
        for tmp in WORK.glob(f"Si_frame{k}*"):   # wavefunction restart files and the like
            tmp.unlink()
        out.unlink()
        print(f"frame {k}: E(DFT) - E(label) = {parsed['energy_ev'] - parsed['label_energy_ev']:.4f} eV, "
              f"pressure {pressure_gpa(parsed['stress_ev_a3']):.3f} GPa")


def volume_check(frame: int, strain: float, np_: int = 2, solve=None, reference: str = "scratch") -> dict:
    """The analytical pressure against -(E+ - E-)/(V+ - V-) from two single points with the frame (cell and
    atoms) scaled isotropically by 1 +- strain: checks the sign and units taken from CP2K's stress printout,
    and that CP2K's analytical stress is the derivative of its energy at these settings.
    ``solve(input text, project) -> parsed output`` replaces the plain single point (cp2k_label_noise.py passes
    its converged one, with ``reference="converged"``: the analytical stress of frame<k>.converged.json)."""
    from hqc_qiskit.data.dataset import load_labelled

    analytical = json.loads((WORK / f"frame{frame}.{REFERENCES[reference]}").read_text())
    base = load_labelled(TEST)[frame]
    result = WORK / f"frame{frame}.volume_check{'' if reference == 'scratch' else '.' + reference}.json"
    energies, volumes = {}, {}
    for sign, tag in ((1, "plus"), (-1, "minus")):
        inp, project = WORK / f"frame{frame}_{tag}.inp", f"Si_frame{frame}_{tag}"
        atoms, text = scaled_input(base, 1 + sign * strain, project)
        parsed = solve(text, project) if solve else parse_output(run_cp2k(inp, text, np_), len(atoms))
        if parsed["scf_steps"] is None:
            sys.exit(f"frame {frame} {tag}: the SCF did not converge; see {inp.with_suffix('.out')}")
        energies[tag], volumes[tag] = parsed["energy_ev"], atoms.get_volume()
    finite = -(energies["plus"] - energies["minus"]) / (volumes["plus"] - volumes["minus"]) / GPa
    report = {"frame": frame, "strain": strain, "reference": reference, "energies_ev": energies, "volumes_a3": volumes,
              "pressure_finite_difference_gpa": finite,
              "pressure_analytical_gpa": float(pressure_gpa(analytical["stress_ev_a3"]))}
    result.write_text(json.dumps(report, indent=1))
    print(f"frame {frame}: pressure {report['pressure_analytical_gpa']:.3f} GPa (analytical stress, ASE sign) vs "
          f"{finite:.3f} GPa (-dE/dV from +-{strain:g} strain)")
    return report


def compare(runs: list[str], reference: str = "converged") -> dict:
    """``reference``: ``converged`` (cp2k_label_noise.py's converged OT minimum) or ``scratch`` (this script's
    single points: OT from atomic guesses to the default EPS_SCF, tens of meV above the minimum)."""
    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.data.dataset import load_labelled

    data = load_labelled(TEST)
    suffix = REFERENCES[reference]
    dft = sorted((json.loads(p.read_text()) for p in WORK.glob(f"frame*.{suffix}")), key=lambda d: d["frame"])
    if not dft:
        script = "cp2k_label_noise.py" if reference == "converged" else Path(__file__).name
        sys.exit(f"no {reference} DFT results in {WORK}: run `python docs/evidence/{script} run` first")
    ref = np.array([d["stress_ev_a3"] for d in dft])                      # (K, 3, 3)
    report = {"frames": [d["frame"] for d in dft], "file": dft[0]["file"], "reference": reference,
              "dft": {"pressure_gpa": pressure_gpa(ref).tolist(),
                      "energy_minus_label_ev": [d["energy_ev"] - d["label_energy_ev"] for d in dft],
                      "force_rmse_vs_label_ev_a": [float(np.sqrt(np.mean((np.array(d["forces_ev_a"]) -
                                                   data[d["frame"]].get_forces()) ** 2))) for d in dft]},
              "models": {}}
    print(f"DFT (CP2K) on test frames {report['frames']}: pressure (mean {np.mean(report['dft']['pressure_gpa']):.2f}) "
          + ", ".join(f"{p:.2f}" for p in report["dft"]["pressure_gpa"]) + " GPa; E - label "
          + ", ".join(f"{e * 1000:.1f}" for e in report["dft"]["energy_minus_label_ev"]) + " meV; F RMSE vs label "
          + ", ".join(f"{f:.3f}" for f in report["dft"]["force_rmse_vs_label_ev_a"]) + " eV/Å")
    for run_dir in runs:
        calc = HQCCalculator(ROOT / run_dir, dtype="float64")
        pred = []
        for d in dft:
            atoms = data[d["frame"]].copy()
            atoms.calc = calc
            pred.append(atoms.get_stress(voigt=False))
        pred = np.array(pred)
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
        p_model = pressure_gpa(pred)
        p_error = p_model - np.array(report["dft"]["pressure_gpa"])
        report["models"][run_dir] = {"stress_rmse_ev_a3": rmse, "stress_rmse_gpa": rmse / GPa,
                                     "pressure_gpa": p_model.tolist(), "pressure_rmse_gpa": float(np.sqrt(np.mean(p_error**2))),
                                     "pressure_mean_error_gpa": float(p_error.mean()), "stress_ev_a3": pred.tolist()}
        print(f"{run_dir}: stress component RMSE {rmse / GPa:.2f} GPa ({rmse * 1000:.2f} meV/Å^3); pressure RMSE "
              f"{np.sqrt(np.mean(p_error**2)):.2f} GPa, mean error {p_error.mean():+.2f} GPa; pressure "
              + ", ".join(f"{p:.2f}" for p in p_model) + " GPa")
    (HERE / "cp2k_stress.json").write_text(json.dumps(report, indent=1))
    write_labelled_frames(data, dft, reference)
    return report


def write_labelled_frames(data: list, dft: list[dict], reference: str) -> Path:
    """The frames with CP2K's energy, forces and stress as labels (extxyz), for `hqc-qiskit evaluate`."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.stress import full_3x3_to_voigt_6_stress

    from hqc_qiskit.data.dataset import write_structures

    frames = []
    for d in dft:
        atoms = data[d["frame"]].copy()
        source = ("converged OT minimum, docs/evidence/cp2k_label_noise.py" if reference == "converged" else
                  "single point from atomic guesses, docs/evidence/cp2k_stress.py")
        atoms.info = {"test_frame": d["frame"], "source": f"CP2K 2023.1, {source}"}
        atoms.calc = SinglePointCalculator(atoms, energy=d["energy_ev"], forces=np.array(d["forces_ev_a"]),
                                           stress=full_3x3_to_voigt_6_stress(np.array(d["stress_ev_a3"])))
        frames.append(atoms)
    path = HERE / "cp2k_stress_frames.extxyz"
    write_structures(path, frames)
    return path


def labelled(atoms, result: dict, script: str, **info):
    """``atoms`` with a converged CP2K result's energy, forces and stress as labels (SinglePointCalculator), its
    info replaced by ``info`` and the source (``script``, the evidence script that computed it): a frame for
    `hqc-qiskit data merge`."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.stress import full_3x3_to_voigt_6_stress

    atoms.info = {**info, "source": f"CP2K 2023.1, converged OT minimum, docs/evidence/{script}"}
    atoms.calc = SinglePointCalculator(atoms, energy=result["energy_ev"], forces=np.array(result["forces_ev_a"]),
                                       stress=full_3x3_to_voigt_6_stress(np.array(result["stress_ev_a3"])))
    return atoms


def run_compare_main(doc: str, run, compare, option: str, default: str, what: str, parse=int,
                     run_help: str = "converged CP2K single points", compare_help: str = "the models against DFT") -> None:
    """The command line of an evidence script with `run OPTION=a,b,c [--np N]` (CP2K single points: run(values,
    np)) and `compare` (compare()): cp2k_npt.py."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help=run_help)
    run_p.add_argument(option, default=default, help=f"{what}, comma-separated")
    run_p.add_argument("--np", type=int, default=2, help="MPI processes")
    sub.add_parser("compare", help=compare_help)
    args = parser.parse_args()
    if args.command == "run":
        run([parse(x) for x in getattr(args, option.lstrip("-")).split(",")], args.np)
    else:
        compare()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="CP2K single points with the analytical stress on test frames")
    run_p.add_argument("--frames", default="0,1,2", help="test-file frames, comma-separated")
    run_p.add_argument("--np", type=int, default=2, help="MPI processes")
    check_p = sub.add_parser("volume-check", help="analytical pressure against -dE/dV from two strained single points")
    check_p.add_argument("--frame", type=int, default=1)
    check_p.add_argument("--strain", type=float, default=0.005, help="isotropic linear strain of each side")
    check_p.add_argument("--np", type=int, default=2, help="MPI processes")
    compare_p = sub.add_parser("compare", help="the models' stress against the DFT stress")
    compare_p.add_argument("runs", nargs="+", help="run directories, relative to the repository root")
    compare_p.add_argument("--reference", choices=sorted(REFERENCES), default="converged",
                           help="DFT stresses to compare with (default: the converged OT minima of cp2k_label_noise.py)")
    args = parser.parse_args()
    if args.command == "run":
        run([int(x) for x in args.frames.split(",")], args.np)
    elif args.command == "volume-check":
        volume_check(args.frame, args.strain, args.np)
    else:
        compare(args.runs, args.reference)


if __name__ == "__main__":
    main()
