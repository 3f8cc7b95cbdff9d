"""Away from the training density: DFT (CP2K) on compressed and expanded test frames against the models.

    bash scripts/install_cp2k.sh
    python docs/evidence/cp2k_label_noise.py run --frames 0,1                 # the frames at the data's density
    python docs/evidence/cp2k_density.py run --frames 0,1 --scales 0.97,1.03  # 3-9 min per single point, 2 cores
    python docs/evidence/cp2k_density.py run --file train --frames 0,1       # training frames, for a fine-tune,
    python docs/evidence/cp2k_density.py labels [--file val] [--scales 0.94,1.06]   # ... as a labelled file
    python docs/evidence/cp2k_density.py compare runs/small_l2_hqc_cz_long ... --committees
                                           # -> cp2k_density.json, docs/img/cp2k_density.png
    python docs/evidence/cp2k_density.py table  # its errors as docs/results.md's markdown table

(runs/density/run.sh runs the whole study of docs/results.md "Away from the training density".)

All the shipped data is at one density (2.329 g/cm³), so a model's pressure and energy at other densities are an
extrapolation, which NPT runs rely on. `run` scales test frames (cell and atoms, isotropically) by each linear
factor (0.97: +9.6% in density; 1.03: -8.5%) and finds the converged OT minimum of the data's own functional there
(cp2k_label_noise.py's recipe: smeared diagonalization, then the data's OT from it to EPS_SCF 1e-6; PBE,
DZVP-GTH, 400 Ry), keeping energy, forces and the analytical stress in
docs/evidence/cp2k_stress/frame<k>.scale<s>.converged.json. `compare` evaluates the models on the same scaled
frames and reports, per density: the pressure error, the energy change from the data's density (the equation of
state's content: E(s) - E(1) per atom, the same frame on both sides, so the labels' offsets cancel) and the force
RMSE, against DFT; scale 1 is the frame's converged result at the data's density (cp2k_label_noise.py `run`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase.units import GPa

from cp2k_label_noise import converged_single_point
from cp2k_stress import HERE, ROOT, TEST, WORK, labelled, scaled_input
from hqc_qiskit.checkpoint import atomic_write_json
from hqc_qiskit.data.dataset import density_g_cm3, scaled_copy
from hqc_qiskit.metrics import pressure_gpa

TRAIN = TEST.with_name(TEST.name.replace(".test.", ".train."))
VAL = TEST.with_name(TEST.name.replace(".test.", ".val."))
FILES = {"test": TEST, "train": TRAIN, "val": VAL}
# training frames labelled here at other densities, with their stress: the file a fine-tune reads (see `labels`)
TRAIN_LABELS = HERE / "cp2k_density_train_frames.extxyz"
VAL_LABELS = HERE / "cp2k_density_val_frames.extxyz"     # validation frames likewise: what a fine-tune validates on


def result_path(frame: int, scale: float, which: str = "test") -> Path:
    """The converged result of frame ``frame`` of the test (or train) file scaled by ``scale``; the test frames at
    scale 1 are cp2k_label_noise.py's."""
    prefix = "" if which == "test" else f"{which}."
    if scale == 1 and which == "test":
        return WORK / f"frame{frame}.converged.json"
    return WORK / f"{prefix}frame{frame}.scale{scale:g}.converged.json"


def run(frames: list[int], scales: list[float], np_: int = 2, which: str = "test") -> None:
    """Converged single points of each frame of the test (or train) file scaled by each factor (resumable: done
    pairs are skipped)."""
    from hqc_qiskit.data.dataset import load_labelled

    data = load_labelled(FILES[which])
    WORK.mkdir(exist_ok=True)
    for k in frames:
        for s in scales:
            path = result_path(k, s, which)
            if path.exists():
                print(f"{which} frame {k} x{s:g}: {path.name} exists, skipped")
                continue
            if s == 1 and which == "test":
                sys.exit(f"frame {k} at the data's density: run `python docs/evidence/cp2k_label_noise.py run --frames {k}`")
            project = f"Si_{which}{k}_scale{s:g}".replace(".", "p")
            atoms, text = scaled_input(data[k], s, project)
            parsed, smeared = converged_single_point(text, project, np_)
            parsed.update(frame=k, scale=s, file=str(FILES[which].relative_to(ROOT)), eps_scf=1e-6,
                          volume_a3=atoms.get_volume(), density_g_cm3=density_g_cm3(atoms),
                          smeared_energy_ev=smeared["energy_ev"], smeared_scf_steps=smeared["scf_steps"])
            atomic_write_json(parsed, path)
            print(f"{which} frame {k} x{s:g} ({parsed['density_g_cm3']:.3f} g/cm³): E {parsed['energy_ev']:.4f} eV, "
                  f"pressure {pressure_gpa(parsed['stress_ev_a3']):.2f} GPa", flush=True)


def write_labels(scales: list[float] | None = None, out: Path | None = None, which: str = "train") -> Path:
    """The scaled training (or validation) frames (those at ``scales``; None: all) with their converged DFT energy,
    forces and stress as labels (extxyz, ``out``): what `hqc-qiskit data merge` adds to the training (validation)
    file for a fine-tune."""
    from hqc_qiskit.data.dataset import load_labelled, write_structures

    out = out or {"train": TRAIN_LABELS, "val": VAL_LABELS}[which]
    data = load_labelled(FILES[which])
    results = sorted((json.loads(p.read_text()) for p in WORK.glob(f"{which}.frame*.scale*.converged.json")),
                     key=lambda d: (d["frame"], d["scale"]))
    if scales is not None:
        missing = sorted(set(scales) - {d["scale"] for d in results})
        if missing:
            sys.exit(f"no {which} frames at scales {missing} in {WORK}: run `python {Path(__file__).relative_to(ROOT)} "
                     f"run --file {which} --scales {','.join(f'{x:g}' for x in missing)}` first")
        results = [d for d in results if d["scale"] in scales]
    if not results:
        sys.exit(f"no scaled {which} frames in {WORK}: run `python {Path(__file__).relative_to(ROOT)} run --file {which}` first")
    frames = []
    for d in results:
        frames.append(labelled(scaled_copy(data[d["frame"]], d["scale"]), d, "cp2k_density.py",
                               **{f"{which}_frame": d["frame"], "scale": d["scale"]}))
    write_structures(out, frames)
    print(f"wrote {len(frames)} labelled frames ({which} frames {sorted({d['frame'] for d in results})}, scales "
          f"{sorted({d['scale'] for d in results})}) to {out}")
    return out


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def dft_points(frames: list[int] | None = None) -> dict:
    """{(frame, scale): converged DFT result} for every frame that has its scale-1 result and at least one other."""
    points = {}
    for path in WORK.glob("frame*.scale*.converged.json"):
        d = json.loads(path.read_text())
        if frames is not None and d["frame"] not in frames:
            continue
        base = result_path(d["frame"], 1)
        if not base.exists():
            print(f"{path.name}: no {base.name} (the frame at the data's density) beside it, left out")
            continue
        points[(d["frame"], d["scale"])] = d
        points[(d["frame"], 1.0)] = json.loads(base.read_text())
    if not points:
        sys.exit(f"no scaled DFT results in {WORK}: run `python {Path(__file__).relative_to(ROOT)} run` first")
    return dict(sorted(points.items()))


def _run_and_checkpoint(run: str) -> tuple[Path, str]:
    """'runs/x' -> (runs/x, 'best'): its best_model.pt; 'runs/x@last' -> (runs/x, 'last'): its final checkpoint."""
    path, _, which = run.partition("@")
    return ROOT / path, which or "best"


def _evaluate(run: str, atoms_at: dict) -> dict:
    """{"energy": {key: eV}, "pressure": {key: GPa}, "forces": {key: (n, 3) eV/Å}} of one model ('runs/x', or
    'runs/x@last' for its last checkpoint) on the scaled frames, and "test": its test-file metrics at the data's
    density (hqc-qiskit evaluate: all 50 frames, the model's own precision)."""
    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.evaluate import evaluate

    path, which = _run_and_checkpoint(run)
    calc = HQCCalculator(path, dtype="float64", which=which)
    metrics = evaluate(path, TEST, which=which)
    out = {"energy": {}, "pressure": {}, "forces": {},
           "test": {k: metrics[k] for k in ("rmse_e_mev_atom", "rmse_e_offset_free_mev_atom", "rmse_f_ev_a")}}
    for key, frame in atoms_at.items():
        atoms = frame.copy()
        atoms.calc = calc
        out["energy"][key] = atoms.get_potential_energy()
        out["pressure"][key] = float(pressure_gpa(atoms.get_stress(voigt=False)))
        out["forces"][key] = np.asarray(atoms.get_forces())
    return out


def _errors(pred: dict, points: dict, dft_p: dict, dft_de: dict, scales: list[float], n: int) -> dict:
    """Per scale (frame means): the pressure error (GPa), the error of E(s) - E(1) (meV/atom), the force RMSE (eV/Å)."""
    keys = list(points)
    de = {key: 1000 * (pred["energy"][key] - pred["energy"][(key[0], 1.0)]) / n for key in keys}
    row = {"pressure_gpa": _per_scale(pred["pressure"], scales), "energy_change_mev_per_atom": _per_scale(de, scales),
           "pressure_error_gpa": [], "energy_change_error_mev_per_atom": [], "force_rmse_ev_a": []}
    for s in scales:
        at = [key for key in keys if key[1] == s]
        row["pressure_error_gpa"].append(float(np.mean([pred["pressure"][key] - dft_p[key] for key in at])))
        row["energy_change_error_mev_per_atom"].append(float(np.mean([de[key] - dft_de[key] for key in at])))
        row["force_rmse_ev_a"].append(_rms(np.concatenate(
            [pred["forces"][key] - np.array(points[key]["forces_ev_a"]) for key in at])))
    return row


def _committee_spread(members: list[dict], scales: list[float], n: int) -> dict:
    """Per scale (frame means): the members' energy spread (std of E per atom, meV/atom, as `predict`'s
    hqc_energy_std), pressure spread (GPa) and mean force deviation per atom (eV/Å, as hqc_forces_dev)."""
    keys = list(members[0]["energy"])
    spread = {"energy_std_mev_per_atom": [], "pressure_std_gpa": [], "mean_force_dev_ev_a": []}
    for s in scales:
        at = [key for key in keys if key[1] == s]
        spread["energy_std_mev_per_atom"].append(float(np.mean(
            [1000 * np.std([m["energy"][key] for m in members]) / n for key in at])))
        spread["pressure_std_gpa"].append(float(np.mean([np.std([m["pressure"][key] for m in members]) for key in at])))
        devs = []
        for key in at:
            f = np.array([m["forces"][key] for m in members])                    # (M, n, 3)
            devs.append(np.sqrt(np.mean(np.sum((f - f.mean(0)) ** 2, axis=-1), axis=0)).mean())
        spread["mean_force_dev_ev_a"].append(float(np.mean(devs)))
    return spread


def compare(runs: list[str], committees: dict[str, list[str]] | None = None, frames: list[int] | None = None,
            plot: bool = True) -> dict:
    """The models' (and committees': their members' mean and spread) pressure, energy change and forces against
    DFT per density; writes docs/evidence/cp2k_density.json and docs/img/cp2k_density.png."""
    from hqc_qiskit.data.dataset import load_labelled

    data = load_labelled(TEST)
    points = dft_points(frames)
    keys = list(points)
    scales = sorted({s for _, s in keys})
    n = len(data[keys[0][0]])
    atoms_at = {(k, s): scaled_copy(data[k], s) for k, s in keys}
    density = {s: density_g_cm3(atoms_at[next(key for key in keys if key[1] == s)]) for s in scales}
    dft_p = {key: float(pressure_gpa(points[key]["stress_ev_a3"])) for key in keys}
    dft_de = {key: 1000 * (points[key]["energy_ev"] - points[(key[0], 1.0)]["energy_ev"]) / n for key in keys}
    volume = {key: atoms.get_volume() for key, atoms in atoms_at.items()}
    work = _pressure_work(dft_p, volume, n)
    report = {"file": str(TEST.relative_to(ROOT)), "frames": sorted({k for k, _ in keys}), "scales": scales,
              "density_g_cm3": [density[s] for s in scales],
              "dft": {"pressure_gpa": _per_scale(dft_p, scales), "energy_change_mev_per_atom": _per_scale(dft_de, scales),
                      "minus_pressure_work_mev_per_atom": _per_scale(work, scales)},
              "models": {}, "committees": {}}
    print(f"DFT (CP2K, converged) on test frames {report['frames']}:")
    for s in scales:
        print(f"  x{s:g} ({density[s]:.3f} g/cm³): pressure {_fmt(dft_p, s)} GPa; E - E(data density) "
              f"{_fmt(dft_de, s)} meV/atom; -integral of P dV from the data's density (trapezoids) {_fmt(work, s)}")
    predictions = {}
    for run_dir in list(runs) + [r for members in (committees or {}).values() for r in members]:
        if run_dir not in predictions:
            predictions[run_dir] = _evaluate(run_dir, atoms_at)
    for run_dir in runs:
        row = report["models"][run_dir] = _errors(predictions[run_dir], points, dft_p, dft_de, scales, n)
        row["test_at_data_density"] = predictions[run_dir]["test"]
        print(f"{run_dir}: " + _describe(row, scales) + "; whole test file at the data's density: E RMSE "
              f"{row['test_at_data_density']['rmse_e_mev_atom']:.2f} meV/atom, F RMSE {row['test_at_data_density']['rmse_f_ev_a']:.4f} eV/Å")
    for name, members in (committees or {}).items():
        preds = [predictions[r] for r in members]
        mean = {field: {key: np.mean([p[field][key] for p in preds], axis=0) for key in keys}
                for field in ("energy", "pressure", "forces")}
        row = _errors(mean, points, dft_p, dft_de, scales, n)
        row.update(members=members, spread=_committee_spread(preds, scales, n))
        report["committees"][name] = row
        print(f"{name} (mean of {len(members)}): " + _describe(row, scales) + "; spread: " + "; ".join(
            f"x{s:g}: E std {row['spread']['energy_std_mev_per_atom'][i]:.1f} meV/atom, P std "
            f"{row['spread']['pressure_std_gpa'][i]:.2f} GPa, F dev {row['spread']['mean_force_dev_ev_a'][i]:.3f} eV/Å"
            for i, s in enumerate(scales)))
    (HERE / "cp2k_density.json").write_text(json.dumps(report, indent=1))
    if plot and (runs or committees):
        plot_report(report, ROOT / "docs" / "img" / "cp2k_density.png")
    return report


def _describe(row: dict, scales: list[float]) -> str:
    return "; ".join(f"x{s:g}: P error {row['pressure_error_gpa'][i]:+.2f} GPa, dE error "
                     f"{row['energy_change_error_mev_per_atom'][i]:+.1f} meV/atom, F RMSE {row['force_rmse_ev_a'][i]:.3f} eV/Å"
                     for i, s in enumerate(scales))


def _pressure_work(pressure: dict, volume: dict, n: int) -> dict:
    """{(frame, scale): -integral of P dV from scale 1 to scale (meV/atom)} by trapezoids through the frame's
    scales in order: what E(s) - E(1) is if the DFT stress is the volume derivative of the DFT energy (a check
    of the stresses away from the data's density, exact up to the trapezoids' error)."""
    out = {}
    for k in sorted({k for k, _ in pressure}):
        ladder = sorted(s for f, s in pressure if f == k)
        for direction in (ladder[ladder.index(1.0):], ladder[ladder.index(1.0)::-1]):
            total = 0.0
            out[(k, 1.0)] = 0.0
            for a, b in zip(direction, direction[1:]):
                total -= 0.5 * (pressure[(k, a)] + pressure[(k, b)]) * GPa * (volume[(k, b)] - volume[(k, a)])
                out[(k, b)] = 1000 * total / n
    return out


def _per_scale(values: dict, scales: list[float]) -> list[list[float]]:
    """Per scale, the values of the frames (in frame order)."""
    return [[values[key] for key in sorted(values) if key[1] == s] for s in scales]


def _fmt(values: dict, s: float) -> str:
    return ", ".join(f"{v:+.2f}" for key, v in sorted(values.items()) if key[1] == s)


def markdown_table(report: dict) -> str:
    """The models' and committees' errors per density as docs/results.md's table rows: pressure error (GPa) /
    error of E - E(1) (meV/atom) / force RMSE (eV/Å), frame means; and each model's test-file RMSE at the data's
    density (E meV/atom / F eV/Å)."""
    scales = report["scales"]
    head = ["model"] + [f"x{s:g}" for s in scales] + ["test at x1: E / F"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [(f"`{name}`", row) for name, row in report["models"].items()]
    rows += [(f"{name}, mean", row) for name, row in report["committees"].items()]
    for name, row in rows:
        cells = [f"{row['pressure_error_gpa'][i]:+.1f} / {row['energy_change_error_mev_per_atom'][i]:+.0f} / "
                 f"{row['force_rmse_ev_a'][i]:.3f}" for i in range(len(scales))]
        test = row.get("test_at_data_density")
        cells.append(f"{test['rmse_e_mev_atom']:.2f} / {test['rmse_f_ev_a']:.4f}" if test else "")
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines)


def plot_report(report: dict, path: Path) -> None:
    """The models' errors against DFT per density (frame means): pressure error and error of the energy change;
    the fine-tunes (runs/density) in a panel row of their own, beside the source model and the committees."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rho = np.array(report["density_g_cm3"])
    models = {name: row for name, row in report["models"].items() if "_seed1" not in name}  # within 0.15 GPa of seed 0
    groups = [("models trained at the data's density", {n: r for n, r in models.items() if "runs/density/" not in n},
               report.get("committees", {})),
              ("fine-tunes with DFT frames at other densities (runs/density)",
               {n: r for n, r in models.items() if "runs/density/" in n or n == "runs/small_l2_hqc_cz_long"}, {})]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for (title, lines, committees), row_axes in zip(groups, axes):
        colours = plt.cm.tab10(np.linspace(0, 1, 10))
        for ax, field, label in ((row_axes[0], "pressure_error_gpa", "pressure: model - DFT (GPa)"),
                                 (row_axes[1], "energy_change_error_mev_per_atom", "E - E(2.329 g/cm³): model - DFT (meV/atom)")):
            for k, (name, row) in enumerate(lines.items()):
                ax.plot(rho, row[field], marker="o", ms=3, color=colours[k % 10], ls="-" if k < 10 else "-.",
                        label=name.replace("runs/density/", "").replace("runs/", ""))
            for name, row in committees.items():
                ax.plot(rho, row[field], ls="--", marker="s", ms=3, label=f"{name}, mean")
            ax.axhline(0, color="k", lw=0.8)
            ax.axvline(2.329, color="0.7", ls=":", lw=1)
            ax.set_xlabel("density (g/cm³)")
            ax.set_ylabel(label)
        row_axes[0].set_title(title, fontsize=10, loc="left")
        row_axes[1].legend(fontsize=7, ncol=2)
    axes[0, 0].set_ylim(-6, 9)   # paper_cmlp's -16 GPa at 2.8 g/cm³ off the scale (in the table)
    axes[0, 1].set_ylim(-180, 90)
    fig.suptitle("errors against DFT (CP2K) on test frames 0 and 1 scaled; training data at 2.329 g/cm³ only (dotted)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="converged CP2K single points of scaled test frames")
    run_p.add_argument("--frames", default="0,1", help="test-file frames, comma-separated")
    run_p.add_argument("--scales", default="0.97,1.03", help="linear scale factors of cell and atoms, comma-separated")
    run_p.add_argument("--np", type=int, default=2, help="MPI processes")
    run_p.add_argument("--file", choices=sorted(FILES), default="test", help="frames of the test, train or val file")
    compare_p = sub.add_parser("compare", help="the models' pressure, energy change and forces against DFT per density")
    compare_p.add_argument("runs", nargs="*", help="run directories, relative to the repository root")
    compare_p.add_argument("--frames", default=None, help="only these frames (default: all with results)")
    compare_p.add_argument("--committees", action="store_true",
                           help="also the seed committees of committee_uncertainty.py: their mean's errors and their spread")
    sub.add_parser("table", help="print cp2k_density.json's errors as a markdown table (docs/results.md)")
    labels_p = sub.add_parser("labels", help="write the scaled training (validation) frames with their DFT labels")
    labels_p.add_argument("--file", choices=["train", "val"], default="train", help="frames of the train or the val file")
    labels_p.add_argument("--scales", default=None, help="only the frames at these scales, comma-separated (default: all)")
    labels_p.add_argument("--out", type=Path, default=None,
                          help=f"extxyz file (default: {TRAIN_LABELS.name} or {VAL_LABELS.name})")
    args = parser.parse_args()
    if args.command == "labels":
        write_labels(None if args.scales is None else [float(x) for x in args.scales.split(",")], args.out, args.file)
    elif args.command == "table":
        print(markdown_table(json.loads((HERE / "cp2k_density.json").read_text())))
    elif args.command == "run":
        run([int(x) for x in args.frames.split(",")], [float(x) for x in args.scales.split(",")], args.np, args.file)
    else:
        committees = None
        if args.committees:
            from committee_uncertainty import COMMITTEES as committees
        compare(args.runs, committees, None if args.frames is None else [int(x) for x in args.frames.split(",")])


if __name__ == "__main__":
    main()
