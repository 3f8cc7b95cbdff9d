"""Closer than the data: one pair of atoms of the liquid pulled together, DFT against the models.

    bash scripts/install_cp2k.sh
    python docs/evidence/cp2k_close_pair.py run [--frames 0,1]   # 5-10 min a point on 2 cores
    python docs/evidence/cp2k_close_pair.py run --file train     # training frames pulled (TRAIN_FRAMES), to learn from
    python docs/evidence/cp2k_close_pair.py labels               # ... as a labelled file for `hqc-qiskit data merge`
    python docs/evidence/cp2k_close_pair.py compare     # -> docs/evidence/cp2k_close_pair.json, docs/img/close_pair.png

The training data holds no pair closer than 1.87 Å, yet at 10 GPa and 3000 K the models let pairs reach 1.59 Å
(cp2k_npt.py). This scan measures the repulsion there directly: in test frames 0 and 1 (the data's density) the
closest pair (atoms 13 and 17 at 2.076 Å; 15 and 33 at 2.130 Å) is moved together symmetrically along its bond,
everything else fixed, to each distance of FRAMES; CP2K finds the converged minimum of the data's functional
(cp2k_label_noise.py's recipe) and keeps energy and forces in
docs/evidence/cp2k_stress/closepair.frame<k>.d<d>.converged.json. The unmoved frames are the existing
frame<k>.converged.json. `compare` gives, per model and distance, the energy relative to the unmoved frame and the
force along the bond pushing the pair apart, (F_j - F_i) . u / 2 with u the unit vector from i to j (positive:
repulsive), against DFT's, and each frame's force RMSE.

`run --file train` does the same for training frames (TRAIN_FRAMES: their closest pair pulled to 1.4-1.8 Å,
what `hqc-qiskit data pull-pair` writes), kept in closepair.train.frame<k>.d<d>.converged.json; `labels` writes them
with their DFT energy, forces and stress as labels (cp2k_close_pair_train_frames.extxyz), which
runs/density/run.sh closepair merges into the training file of a fine-tune. The test-frame scans stay held out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cp2k_label_noise import converged_single_point
from cp2k_npt import TRAINING_CLOSEST_PAIR
from cp2k_stress import HERE, ROOT, TEST, WORK, cp2k_input, labelled
from hqc_qiskit.checkpoint import atomic_write_json
from hqc_qiskit.data.dataset import closest_pair, load_labelled, pulled_copy

# test frames whose closest pair is pulled, with the distances (Å) computed for each (`run` skips what is done)
FRAMES = {0: (1.45, 1.6, 1.75, 1.9), 1: (1.45, 1.6, 1.75)}
# training frames pulled likewise, labelled to learn from (`run --file train`, `labels`)
TRAIN = TEST.with_name(TEST.name.replace(".test.", ".train."))
TRAIN_FRAMES = {k: (1.4, 1.5, 1.6, 1.7, 1.8) for k in (0, 1, 2)}   # 1.5 and 1.7 first (finetune_closepair*.yaml)
TRAIN_LABELS = HERE / "cp2k_close_pair_train_frames.extxyz"
MODELS = {"source": "runs/small_l2_hqc_cz_long",
          "fine-tune": "runs/density/small_l2_hqc_cz_density_wide_valstress",
          "fine-tune seed 1": "runs/density/small_l2_hqc_cz_density_wide_valstress_seed1",
          "zbl": "runs/density/small_l2_hqc_cz_density_zbl",
          "zbl seed 1": "runs/density/small_l2_hqc_cz_density_zbl_seed1",
          # fine-tuned with DFT frames whose pair was pulled (TRAIN_FRAMES), without and with ZBL
          "pulled data": "runs/density/small_l2_hqc_cz_density_closepair",
          "pulled data seed 1": "runs/density/small_l2_hqc_cz_density_closepair_seed1",
          "pulled data + zbl": "runs/density/small_l2_hqc_cz_density_closepair_zbl",
          "pulled data + zbl seed 1": "runs/density/small_l2_hqc_cz_density_closepair_zbl_seed1",
          "pulled x5 + zbl": "runs/density/small_l2_hqc_cz_density_closepair_dense_zbl",
          "pulled x5 + zbl seed 1": "runs/density/small_l2_hqc_cz_density_closepair_dense_zbl_seed1"}


def base_frame(frame: int, path: Path = TEST):
    """(frame ``frame`` of the test file (or ``path``), i, j, d0 Å) with (i, j) its closest pair."""
    atoms = load_labelled(path)[frame]
    i, j, d0 = closest_pair(atoms, 4.0)
    return atoms, i, j, d0


def pulled(atoms, i: int, j: int, d: float):
    """``atoms`` with atoms i and j moved symmetrically along their (minimum-image) bond to distance ``d`` Å
    (what `hqc-qiskit data pull-pair` writes)."""
    out = pulled_copy(atoms, i, j, d)
    assert abs(out.get_distance(i, j, mic=True) - d) < 1e-9
    return out


def result_path(frame: int, d: float, which: str = "test") -> Path:
    prefix = "" if which == "test" else f"{which}."
    return WORK / f"closepair.{prefix}frame{frame}.d{d:.2f}.converged.json"


def run(frames: list[int], np_: int = 2, which: str = "test") -> None:
    """Converged single points of the pulled copies of each test (or train) frame in ``frames`` at its FRAMES
    (TRAIN_FRAMES) distances (resumable: done ones are skipped)."""
    WORK.mkdir(exist_ok=True)
    distances, path_of = (FRAMES, TEST) if which == "test" else (TRAIN_FRAMES, TRAIN)
    for frame in frames:
        if frame not in distances:
            raise SystemExit(f"{which} frame {frame} has no distances in {'FRAMES' if which == 'test' else 'TRAIN_FRAMES'} "
                             f"({sorted(distances)})")
        atoms, i, j, d0 = base_frame(frame, path_of)
        for d in distances[frame]:
            path = result_path(frame, d, which)
            if path.exists():
                print(f"{which} frame {frame}, {d:.2f} Å: {path.name} exists, skipped")
                continue
            project = f"Si_closepair{'' if which == 'test' else which}{frame}_{int(round(d * 100))}"
            parsed, smeared = converged_single_point(cp2k_input(pulled(atoms, i, j, d), project), project, np_)
            parsed.update(file=str(path_of.relative_to(ROOT)), frame=frame, atoms=[i, j], distance_a=d,
                          unmoved_distance_a=d0, eps_scf=1e-6, smeared_energy_ev=smeared["energy_ev"],
                          smeared_scf_steps=smeared["scf_steps"])
            atomic_write_json(parsed, path)
            print(f"{which} frame {frame}, {d:.2f} Å: E {parsed['energy_ev']:.4f} eV", flush=True)


def write_labels(out: Path = TRAIN_LABELS, distances: list[float] | None = None) -> Path:
    """The pulled training frames (those at ``distances``, Å; None: all) with their converged DFT energy, forces and
    stress as labels (extxyz, ``out``): what `hqc-qiskit data merge` adds to the training file of a fine-tune."""
    from hqc_qiskit.data.dataset import write_structures

    results = sorted((json.loads(p.read_text()) for p in WORK.glob("closepair.train.frame*.d*.converged.json")),
                     key=lambda r: (r["frame"], r["distance_a"]))
    if distances is not None:
        missing = sorted({(k, d) for k in TRAIN_FRAMES for d in distances} - {(r["frame"], r["distance_a"]) for r in results})
        if missing:
            sys.exit(f"pulled training frames {missing} (frame, Å) not computed in {WORK}: run "
                     f"`python {Path(__file__).relative_to(ROOT)} run --file train` first")
        results = [r for r in results if r["distance_a"] in distances]
    if not results:
        sys.exit(f"no pulled training frames in {WORK}: run `python {Path(__file__).relative_to(ROOT)} run --file train` first")
    frames = []
    for r in results:
        atoms, i, j, _ = base_frame(r["frame"], TRAIN)
        assert [i, j] == r["atoms"], r
        frames.append(labelled(pulled(atoms, i, j, r["distance_a"]), r, "cp2k_close_pair.py", train_frame=r["frame"],
                               pair_atoms=[i, j], distance_A=r["distance_a"]))
    write_structures(out, frames)
    print(f"wrote {len(frames)} labelled frames (train frames {sorted({r['frame'] for r in results})}, distances "
          f"{sorted({r['distance_a'] for r in results})} Å) to {out}")
    return out


def bond_force(forces: np.ndarray, atoms, i: int, j: int) -> float:
    """(F_j - F_i) . u / 2 (eV/Å), u the unit vector from i to j: the force pushing the pair apart."""
    u = atoms.get_distance(i, j, mic=True, vector=True)
    u = u / np.linalg.norm(u)
    return float((forces[j] - forces[i]) @ u / 2)


def scan(frame: int, calcs: dict) -> dict | None:
    """Every model against DFT on test frame ``frame`` unmoved (its converged single point, cp2k_label_noise.py)
    and pulled to each computed distance; None if no pulled copy is computed yet."""
    pulled_results = [json.loads(p.read_text()) for p in WORK.glob(f"closepair.frame{frame}.d*.converged.json")]
    if not pulled_results:
        return None
    atoms, i, j, d0 = base_frame(frame)
    points = sorted([(d0, json.loads((WORK / f"frame{frame}.converged.json").read_text()))]
                    + [(r["distance_a"], r) for r in pulled_results], key=lambda p: p[0])
    rows = []
    for d, dft in points:
        copy = pulled(atoms, i, j, d)
        dft_forces = np.array(dft["forces_ev_a"])
        row = {"distance_a": d, "dft_energy_ev": dft["energy_ev"], "dft_bond_force_ev_a": bond_force(dft_forces, copy, i, j),
               "energy_ev": {}, "bond_force_ev_a": {}, "force_rmse_ev_a": {}}
        for name, calc in calcs.items():
            copy.calc = calc
            forces = copy.get_forces()
            row["energy_ev"][name] = float(copy.get_potential_energy())
            row["bond_force_ev_a"][name] = bond_force(forces, copy, i, j)
            row["force_rmse_ev_a"][name] = float(np.sqrt(np.mean((forces - dft_forces) ** 2)))
        rows.append(row)
    unmoved = next(r for r in rows if r["distance_a"] == d0)
    for row in rows:   # energies relative to the unmoved frame: what pulling the pair together costs
        row["dft_delta_e_ev"] = row["dft_energy_ev"] - unmoved["dft_energy_ev"]
        row["delta_e_ev"] = {m: row["energy_ev"][m] - unmoved["energy_ev"][m] for m in calcs}
    print(f"test frame {frame}, atoms {i} and {j} (unmoved {d0:.3f} Å): energy change (eV) and bond force (eV/Å, + "
          "pushes apart), DFT then " + ", ".join(calcs))
    for row in rows:
        print(f"{row['distance_a']:.3f} Å: dE DFT {row['dft_delta_e_ev']:+.2f} | " + " ".join(
            f"{row['delta_e_ev'][m]:+.2f}" for m in calcs) + f";  F DFT {row['dft_bond_force_ev_a']:+.2f} | "
            + " ".join(f"{row['bond_force_ev_a'][m]:+.2f}" for m in calcs) + ";  F RMSE " + " ".join(
                f"{row['force_rmse_ev_a'][m]:.2f}" for m in calcs))
    return {"frame": frame, "atoms": [i, j], "unmoved_distance_a": d0, "rows": rows}


def compare(plot_to: Path | None = ROOT / "docs" / "img" / "close_pair.png") -> dict:
    """Every model against DFT on the unmoved and the pulled frames; writes cp2k_close_pair.json (and the plot)."""
    from hqc_qiskit.calculator import HQCCalculator

    calcs = {name: HQCCalculator(ROOT / run_dir, dtype="float64") for name, run_dir in MODELS.items()}
    scans = [s for s in (scan(frame, calcs) for frame in FRAMES) if s is not None]
    if not scans:
        raise SystemExit(f"no pulled frames computed in {WORK}: run `python {Path(__file__).relative_to(ROOT)} run` first")
    report = {"file": str(TEST.relative_to(ROOT)), "training_closest_pair_a": TRAINING_CLOSEST_PAIR, "models": MODELS, "scans": scans}
    atomic_write_json(report, HERE / "cp2k_close_pair.json")
    if plot_to is not None:
        plot(report, plot_to)
    return report


def plot(report: dict, path: Path) -> None:
    """Energy change and bond force against the pair distance, one row per scanned frame: DFT points, one line per
    model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scans = report["scans"]
    families = list(dict.fromkeys(name.removesuffix(" seed 1") for name in report["models"]))
    fig, axes = plt.subplots(len(scans), 2, figsize=(10, 3.8 * len(scans)), constrained_layout=True, squeeze=False)
    for scan_, (ax_e, ax_f) in zip(scans, axes):
        rows, (i, j) = scan_["rows"], scan_["atoms"]
        d = [r["distance_a"] for r in rows]
        for ax, dft_key, key, label in ((ax_e, "dft_delta_e_ev", "delta_e_ev", "energy change (eV)"),
                                        (ax_f, "dft_bond_force_ev_a", "bond_force_ev_a", "force pushing the pair apart (eV/Å)")):
            ax.plot(d, [r[dft_key] for r in rows], "ko", ms=7, label="DFT (CP2K)", zorder=3)
            for name in report["models"]:   # a model's seed 1 takes its colour, dashed (11 lines, 10 default colours)
                family = families.index(name.removesuffix(" seed 1"))
                ax.plot(d, [r[key][name] for r in rows], "-" if "seed" not in name else "--", marker=".", label=name,
                        color=f"C{family}")
            ax.axvline(report["training_closest_pair_a"], color="grey", lw=0.8, ls=":")
            ax.set_xlabel(f"distance of atoms {i} and {j} of test frame {scan_['frame']} (Å)")
            ax.set_ylabel(label)
        ax_f.text(report["training_closest_pair_a"], ax_f.get_ylim()[1], " closest pair in\n the training data",
                  va="top", fontsize=8, color="grey")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("One pair of a test frame pulled together, the rest fixed")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="converged CP2K single points of the pulled frames")
    run_p.add_argument("--file", choices=("test", "train"), default="test",
                       help="test frames (FRAMES, to compare on) or training frames (TRAIN_FRAMES, to learn from)")
    run_p.add_argument("--frames", default=None, help="frames, comma-separated (default: all of FRAMES or TRAIN_FRAMES)")
    run_p.add_argument("--np", type=int, default=2, help="MPI processes")
    labels_p = sub.add_parser("labels", help="the pulled training frames with their DFT labels, for `hqc-qiskit data merge`")
    labels_p.add_argument("--out", type=Path, default=TRAIN_LABELS)
    labels_p.add_argument("--distances", default=None, help="only the frames pulled to these distances (Å), comma-separated")
    sub.add_parser("compare", help="every model's energy and bond force against DFT on the pulled test frames")
    args = parser.parse_args()
    if args.command == "run":
        default = FRAMES if args.file == "test" else TRAIN_FRAMES
        frames = list(default) if args.frames is None else [int(x) for x in args.frames.split(",")]
        run(frames, args.np, args.file)
    elif args.command == "labels":
        write_labels(args.out, None if args.distances is None else [float(x) for x in args.distances.split(",")])
    else:
        compare()


if __name__ == "__main__":
    main()
