"""How well converged are the data's DFT labels? CP2K's OT at the default EPS_SCF on metallic liquid Si.

    bash scripts/install_cp2k.sh
    python docs/evidence/cp2k_label_noise.py run --frames 0,1,2,3,4,5,6,7     # ~8 min per frame on 2 cores
    python docs/evidence/cp2k_label_noise.py compare runs/l2_hqc_cz_long ...  # labels, single points, models vs converged
    python docs/evidence/cp2k_label_noise.py volume-check --frame 1           # cp2k_stress.py's check, converged

The data's MD (the paper's cp2k.inp) minimizes with OT (orbital transformation, integer occupations, no
smearing) to CP2K's default EPS_SCF of 1e-5, each step starting from the previous steps' wavefunctions. Liquid
Si is a metal: the energy is flat along occupied-virtual rotations near the Fermi level, so a gradient below
1e-5 can still leave tens of meV to gain, and where the minimizer stops depends on where it started.

`run` finds the minimum of the same functional from a start near it, per test frame: (1) a diagonalization
with Fermi-Dirac smearing at 300 K (Broyden mixing, from atomic guesses), whose wavefunction (2) starts the
data's own OT at EPS_SCF 1e-6 with the analytical stress; it keeps energy, forces and stress of (2) in
docs/evidence/cp2k_stress/frame<k>.converged.json (and the smeared step's energy and forces). Level of
theory, basis, grid and cutoff are the data's (docs/evidence/cp2k_single_point_frame0.inp); only the path to
the minimum and the tolerance differ. `compare` reports, against these converged results, the labels and
the from-scratch single points of cp2k_stress.py (same OT, EPS_SCF 1e-5, atomic start), and the given models'
forces against both the labels and the converged forces; it writes docs/evidence/cp2k_label_noise.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase.units import GPa

from cp2k_stress import ROOT, TEST, WORK, cp2k_input, parse_output, pending_frames, run_cp2k, volume_check
from hqc_qiskit.metrics import pressure_gpa

OT_SCF = """      &SCF
         MAX_SCF 400
         &OT ON
            MINIMIZER DIIS
            N_DIIS 5
         &END OT
      &END SCF
"""
SMEARED_SCF = """      &SCF
         MAX_SCF 300
         EPS_SCF 1.0E-7
         SCF_GUESS ATOMIC
         ADDED_MOS 60
         &DIAGONALIZATION ON
            ALGORITHM STANDARD
         &END DIAGONALIZATION
         &SMEAR ON
            METHOD FERMI_DIRAC
            ELECTRONIC_TEMPERATURE [K] 300
         &END SMEAR
         &MIXING
            METHOD BROYDEN_MIXING
            ALPHA 0.2
            NBROYDEN 8
         &END MIXING
      &END SCF
"""
RESTARTED_OT_SCF = """      WFN_RESTART_FILE_NAME {wfn}
      &SCF
         SCF_GUESS RESTART
         MAX_SCF 400
         EPS_SCF 1.0E-6
         &OT ON
            MINIMIZER DIIS
            N_DIIS 5
         &END OT
      &END SCF
"""


def converged_single_point(text: str, project: str, np_: int) -> tuple[dict, dict]:
    """(converged OT result, smeared result) of the CP2K input ``text`` (the data's OT section, PROJECT ``project``):
    a smeared diagonalization from atomic guesses, then the data's OT from its wavefunction to EPS_SCF 1e-6.
    Working files (``<project>_*`` in WORK) are removed afterwards."""
    assert OT_SCF in text and f"PROJECT {project}\n" in text
    n_atoms = text[text.index("&COORD"):text.index("&END COORD")].count("\n") - 1
    smeared_text = text.replace(OT_SCF, SMEARED_SCF).replace(f"PROJECT {project}\n", f"PROJECT {project}_smeared\n")
    smeared = parse_output(run_cp2k(WORK / f"{project}_smeared.inp", smeared_text, np_), n_atoms)
    if smeared["scf_steps"] is None:
        sys.exit(f"{project}: the smeared SCF did not converge; see {WORK / f'{project}_smeared.out'}")
    ot_text = text.replace(OT_SCF, RESTARTED_OT_SCF.format(wfn=f"{project}_smeared-RESTART.wfn"))
    ot_text = ot_text.replace(f"PROJECT {project}\n", f"PROJECT {project}_converged\n")
    parsed = parse_output(run_cp2k(WORK / f"{project}_converged.inp", ot_text, np_), n_atoms)
    if parsed["scf_steps"] is None:
        sys.exit(f"{project}: the restarted OT did not converge; see {WORK / f'{project}_converged.out'}")
    for tmp in WORK.glob(f"{project}_*"):   # inputs, outputs, wavefunction restart files
        tmp.unlink()
    return parsed, smeared


def run(frames: list[int], np_: int = 2) -> None:
    for k, atoms, result in pending_frames(frames, "converged.json"):
        parsed, smeared = converged_single_point(cp2k_input(atoms, f"Si_frame{k}"), f"Si_frame{k}", np_)
        parsed.update(frame=k, file=str(TEST.relative_to(ROOT)), label_energy_ev=atoms.get_potential_energy(),
                      eps_scf=1e-6, smeared_energy_ev=smeared["energy_ev"], smeared_forces_ev_a=smeared["forces_ev_a"],
                      smeared_scf_steps=smeared["scf_steps"])
        result.write_text(json.dumps(parsed))
        print(f"frame {k}: converged E - label {1000 * (parsed['energy_ev'] - parsed['label_energy_ev']):+.1f} meV, "
              f"F RMS vs label {_rms(np.array(parsed['forces_ev_a']) - atoms.get_forces()):.3f} eV/Å")


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def model_force_errors(runs: list[str], data: list, frames: list[int]) -> dict:
    """Each model's force RMSE (eV/Å) on ``frames`` against the labels and against the converged forces."""
    from hqc_qiskit.calculator import HQCCalculator

    out = {}
    for run in runs:
        calc = HQCCalculator(ROOT / run, dtype="float64")
        pred, label, conv = [], [], []
        for k in frames:
            label.append(data[k].get_forces())
            atoms = data[k].copy()
            atoms.calc = calc
            pred.append(atoms.get_forces())
            conv.append(json.loads((WORK / f"frame{k}.converged.json").read_text())["forces_ev_a"])
        pred, label, conv = np.array(pred), np.array(label), np.array(conv)
        out[run] = {"force_rmse_vs_labels_ev_a": _rms(pred - label), "force_rmse_vs_converged_ev_a": _rms(pred - conv)}
    return out


def compare(runs: list[str]) -> dict:
    from hqc_qiskit.data.dataset import load_labelled

    data = load_labelled(TEST)
    rows = []
    for path in sorted(WORK.glob("frame*.converged.json"), key=lambda p: int(p.name[5:].split(".")[0])):
        c = json.loads(path.read_text())
        k = c["frame"]
        f_conv = np.array(c["forces_ev_a"])
        row = {"frame": k,
               "label_minus_converged_mev": 1000 * (c["label_energy_ev"] - c["energy_ev"]),
               "label_force_rms_vs_converged_ev_a": _rms(data[k].get_forces() - f_conv),
               "smeared_minus_converged_mev": 1000 * (c["smeared_energy_ev"] - c["energy_ev"]),
               "smeared_force_rms_vs_converged_ev_a": _rms(np.array(c["smeared_forces_ev_a"]) - f_conv),
               "converged_pressure_gpa": float(pressure_gpa(c["stress_ev_a3"]))}
        scratch = WORK / f"frame{k}.dft.json"
        if scratch.exists():
            s = json.loads(scratch.read_text())
            row.update(scratch_minus_converged_mev=1000 * (s["energy_ev"] - c["energy_ev"]),
                       scratch_force_rms_vs_converged_ev_a=_rms(np.array(s["forces_ev_a"]) - f_conv),
                       scratch_stress_rms_vs_converged_gpa=_rms(np.array(s["stress_ev_a3"]) - np.array(c["stress_ev_a3"])) / GPa,
                       scratch_pressure_minus_converged_gpa=float(pressure_gpa(s["stress_ev_a3"]) - row["converged_pressure_gpa"]))
        rows.append(row)
    if not rows:
        sys.exit(f"no converged results in {WORK}: run `python {Path(__file__).relative_to(ROOT)} run` first")
    all_label = np.concatenate([data[r["frame"]].get_forces() - np.array(json.loads(
        (WORK / f"frame{r['frame']}.converged.json").read_text())["forces_ev_a"]) for r in rows])
    report = {"frames": rows, "label_force_rms_vs_converged_ev_a": _rms(all_label),
              "label_energy_offsets_mev": [r["label_minus_converged_mev"] for r in rows]}
    for r in rows:
        print(f"frame {r['frame']}: label - converged {r['label_minus_converged_mev']:+6.1f} meV, F RMS "
              f"{r['label_force_rms_vs_converged_ev_a']:.3f} eV/Å; from-scratch single point "
              f"{r.get('scratch_minus_converged_mev', float('nan')):+6.1f} meV, F RMS "
              f"{r.get('scratch_force_rms_vs_converged_ev_a', float('nan')):.3f}, pressure "
              f"{r.get('scratch_pressure_minus_converged_gpa', float('nan')):+.3f} GPa; smeared (300 K) "
              f"{r['smeared_minus_converged_mev']:+6.1f} meV, F RMS {r['smeared_force_rms_vs_converged_ev_a']:.3f}")
    offsets = np.array(report["label_energy_offsets_mev"])
    print(f"labels against the converged minimum: F RMS {report['label_force_rms_vs_converged_ev_a']:.3f} eV/Å over "
          f"{len(rows)} frames; energy offsets {offsets.mean():+.1f} ± {offsets.std():.1f} meV per structure "
          f"(spread {offsets.std() / 64:.2f} meV/atom)")
    report["models"] = model_force_errors(runs, data, [r["frame"] for r in rows])
    for run, m in report["models"].items():
        print(f"{run}: force RMSE on these frames {m['force_rmse_vs_labels_ev_a']:.3f} eV/Å against the labels, "
              f"{m['force_rmse_vs_converged_ev_a']:.3f} against the converged forces")
    (ROOT / "docs" / "evidence" / "cp2k_label_noise.json").write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="converged OT minimum per test frame (smeared diagonalization, then OT)")
    run_p.add_argument("--frames", default="0,1,2,3,4,5,6,7", help="test-file frames, comma-separated")
    run_p.add_argument("--np", type=int, default=2, help="MPI processes")
    check_p = sub.add_parser("volume-check", help="cp2k_stress.py's volume check with converged single points")
    check_p.add_argument("--frame", type=int, default=1)
    check_p.add_argument("--strain", type=float, default=0.005, help="isotropic linear strain of each side")
    check_p.add_argument("--np", type=int, default=2, help="MPI processes")
    compare_p = sub.add_parser("compare", help="labels and from-scratch single points against the converged results")
    compare_p.add_argument("runs", nargs="*", help="run directories whose forces to compare with both, relative to the repository root")
    args = parser.parse_args()
    if args.command == "run":
        run([int(x) for x in args.frames.split(",")], args.np)
    elif args.command == "volume-check":
        volume_check(args.frame, args.strain, args.np, solve=lambda text, project: converged_single_point(
            text, project, args.np)[0], reference="converged")
    else:
        compare(args.runs)


if __name__ == "__main__":
    main()
