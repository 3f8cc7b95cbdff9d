"""Does a committee's disagreement tell where its forces are wrong? (docs/results.md, "Committee uncertainty")

    python docs/evidence/committee_uncertainty.py          # ~2 min on 2 cores; writes the JSON and plot below

Committees: the shipped runs of one config trained with different seeds (HQC-cz l=2, 3 seeds; CMLP l=2,
2 seeds). On the 50 test frames, `hqc-qiskit predict` with all members gives the committee mean and, per
atom, the force deviation d = sqrt(mean_m |F_m - F_mean|^2); this script compares d with the committee
mean's actual error |F_mean - F_DFT| (rank correlation per atom and per frame, mean error per decile of d),
and the members' force RMSE with the committee mean's. Then it scales 10 test frames isotropically
(linear factors 0.94-1.06; the models saw one density only) and reports how the disagreement grows
where the models extrapolate. Writes docs/evidence/committee_uncertainty.json and
docs/img/committee_uncertainty.png.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from ase.io import read
from scipy.stats import spearmanr

from hqc_qiskit.data.dataset import scaled_copy, write_structures
from hqc_qiskit.predict import predict_file

ROOT = Path(__file__).resolve().parents[2]
TEST = ROOT / "data" / "si_liquid_3000K" / "si_liquid_3000K.test.extxyz.gz"
COMMITTEES = {
    "HQC-cz l=2 (3 seeds)": ["runs/l2_hqc_cz_clip500_long", "runs/l2_hqc_cz_clip500_seed1_long",
                             "runs/l2_hqc_cz_clip500_seed2_long"],
    "CMLP l=2 (2 seeds)": ["runs/l2_cmlp_long", "runs/l2_cmlp_seed1_long"],
}
SCALES = [0.94, 0.97, 1.0, 1.03, 1.06]   # isotropic linear scale factors of cell and positions
N_STRAINED = 10


def rmse(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def on_test(runs: list[str], work: Path) -> dict:
    out = work / "committee.extxyz"
    predict_file([ROOT / r for r in runs], TEST, out, overwrite=True)
    frames = read(out, ":")
    err = np.concatenate([np.linalg.norm(a.arrays["hqc_forces"] - a.get_forces(), axis=1) for a in frames])
    dev = np.concatenate([a.arrays["hqc_forces_dev"] for a in frames])
    frame_rmse = np.array([rmse(a.arrays["hqc_forces"] - a.get_forces()) for a in frames])
    frame_max_dev = np.array([a.info["hqc_max_forces_dev"] for a in frames])
    members = []
    for r in runs:
        predict_file(ROOT / r, TEST, work / "member.extxyz", overwrite=True)
        members.append(rmse(np.concatenate([a.arrays["hqc_forces"] - a.get_forces() for a in read(work / "member.extxyz", ":")])))
    deciles = np.quantile(dev, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(deciles, dev, side="right") - 1, 0, 9)
    return {
        "members_force_rmse_ev_a": members,
        "committee_force_rmse_ev_a": rmse(np.concatenate([a.arrays["hqc_forces"] - a.get_forces() for a in frames])),
        "atom_spearman_dev_vs_error": float(spearmanr(dev, err).statistic),
        "frame_spearman_max_dev_vs_rmse": float(spearmanr(frame_max_dev, frame_rmse).statistic),
        "mean_dev_ev_a": float(dev.mean()),
        "mean_error_norm_ev_a": float(err.mean()),
        "decile_mean_dev_ev_a": [float(dev[which == k].mean()) for k in range(10)],
        "decile_mean_error_norm_ev_a": [float(err[which == k].mean()) for k in range(10)],
    }


def under_strain(runs: list[str], work: Path) -> dict:
    base = read(TEST, f":{N_STRAINED}")
    result = {}
    for s in SCALES:
        frames = [scaled_copy(atoms, s) for atoms in base]
        write_structures(work / "strained.extxyz", frames)
        predict_file([ROOT / r for r in runs], work / "strained.extxyz", work / "strained_pred.extxyz", overwrite=True)
        pred = read(work / "strained_pred.extxyz", ":")
        result[f"{s:g}"] = {"mean_atom_dev_ev_a": float(np.mean([a.arrays["hqc_forces_dev"].mean() for a in pred])),
                            "median_frame_max_dev_ev_a": float(np.median([a.info["hqc_max_forces_dev"] for a in pred])),
                            "energy_std_mev_atom": float(np.mean([a.info["hqc_energy_std"] / len(a) for a in pred]) * 1000)}
    return result


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in report["committees"].items():
        t = r["test"]
        left.plot(t["decile_mean_dev_ev_a"], t["decile_mean_error_norm_ev_a"], "o-",
                  label=f"{name}: Spearman {t['atom_spearman_dev_vs_error']:.2f}")
        scales = [float(s) for s in r["strain"]]
        right.plot(scales, [v["mean_atom_dev_ev_a"] for v in r["strain"].values()], "o-", label=name)
    left.set_xlabel("committee force deviation d (eV/Å), decile mean")
    left.set_ylabel("|F_committee - F_DFT| (eV/Å), decile mean")
    left.set_title("test set: 3200 atoms in deciles of d")
    left.legend(fontsize=8)
    right.set_xlabel("isotropic linear scale of cell and positions (1 = training density)")
    right.set_ylabel("mean force deviation per atom (eV/Å)")
    right.set_title(f"{N_STRAINED} test frames, scaled")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    report = {"test_file": str(TEST.relative_to(ROOT)), "scales": SCALES, "n_strained_frames": N_STRAINED, "committees": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, runs in COMMITTEES.items():
            t, s = on_test(runs, Path(tmp)), under_strain(runs, Path(tmp))
            report["committees"][name] = {"runs": runs, "test": t, "strain": s}
            print(f"{name}: members' F RMSE {', '.join(f'{x:.3f}' for x in t['members_force_rmse_ev_a'])}, committee "
                  f"{t['committee_force_rmse_ev_a']:.3f} eV/Å; Spearman(d, |error|) per atom "
                  f"{t['atom_spearman_dev_vs_error']:.2f}, per frame (max d vs RMSE) {t['frame_spearman_max_dev_vs_rmse']:.2f}; "
                  f"mean d {t['mean_dev_ev_a']:.3f} vs mean |error| {t['mean_error_norm_ev_a']:.3f} eV/Å")
            print("   deciles of d: mean d " + ", ".join(f"{x:.3f}" for x in t["decile_mean_dev_ev_a"]))
            print("               mean |error| " + ", ".join(f"{x:.3f}" for x in t["decile_mean_error_norm_ev_a"]))
            print("   under scaling: mean d " + ", ".join(f"{k}: {v['mean_atom_dev_ev_a']:.3f}" for k, v in s.items())
                  + " eV/Å; energy std " + ", ".join(f"{k}: {v['energy_std_mev_atom']:.1f}" for k, v in s.items()) + " meV/atom")
    (ROOT / "docs" / "evidence" / "committee_uncertainty.json").write_text(json.dumps(report, indent=1))
    plot(report, ROOT / "docs" / "img" / "committee_uncertainty.png")


if __name__ == "__main__":
    main()
