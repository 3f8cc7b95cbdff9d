"""The study aggregator reads runs, computes epochs-to-threshold and mean/spread over seeds."""

from __future__ import annotations

import csv
import json

import pytest

import numpy as np

from hqc_qiskit.studies import compare_curves, escape_epoch, readouts_study
from hqc_qiskit.train import METRIC_FIELDS


def _fake_run(folder, name, val_f, test_f, seconds=60.0):
    run = folder / name
    run.mkdir(parents=True)
    with open(run / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(METRIC_FIELDS)
        for k, f in enumerate(val_f, start=1):
            row = {"epoch": k, "val_rmse_f_ev_a": f, "val_rmse_e_mev_atom": 10 * f, "val_loss": f, "lr": 0.01,
                   "epoch_seconds": seconds / len(val_f), "wall_seconds": k * seconds / len(val_f)}
            w.writerow([row.get(c, "") for c in METRIC_FIELDS])
    summary = {"epochs": len(val_f), "train_seconds": seconds,
               "test": {"rmse_e_mev_atom": 10 * test_f, "rmse_e_offset_free_mev_atom": 5 * test_f, "rmse_f_ev_a": test_f}}
    (run / "summary.json").write_text(json.dumps(summary))


def test_readouts_study(tmp_path):
    _fake_run(tmp_path, "a_s0", [1.0, 0.6, 0.4, 0.3], 0.30)
    _fake_run(tmp_path, "a_s1", [1.0, 0.8, 0.5, 0.45], 0.40)
    _fake_run(tmp_path, "b_s0", [1.0, 0.9, 0.8, 0.7], 0.70)
    table = readouts_study(tmp_path, threshold=0.5)
    assert table["a"]["epochs_to_threshold"][0] == pytest.approx(3.0)   # epochs 3 and 3
    assert table["a"]["test_rmse_f_ev_a"] == pytest.approx((0.35, 0.05))
    assert table["b"]["epochs_to_threshold"][0] != table["b"]["epochs_to_threshold"][0]  # nan: never reached
    assert table["a"]["epoch_of_best_val_loss"][0] == pytest.approx(4.0)
    assert (tmp_path / "summary.md").exists() and (tmp_path / "val_curves.png").exists()


def test_escape_epoch_marks_the_end_of_the_zero_force_plateau():
    epoch = np.arange(1.0, 6.0)
    assert escape_epoch({"epoch": epoch, "train_rmse_f_ev_a": np.array([1.2, 1.2, 1.1, 1.05, 0.8])}) == 4.0
    never = escape_epoch({"epoch": epoch, "train_rmse_f_ev_a": np.full(5, 1.207)})
    assert never != never  # nan: the run never left the plateau


def test_compare_curves_reads_each_run_at_the_given_epochs(tmp_path):
    from hqc_qiskit.studies import main

    _fake_run(tmp_path, "long", [1.0, 0.6, 0.4, 0.3], 0.30)
    _fake_run(tmp_path, "short", [0.9, 0.5], 0.50)
    main(["curves", str(tmp_path / "long"), str(tmp_path / "short"), "--epochs", "2,4", "--out", str(tmp_path / "c.png")])
    assert (tmp_path / "c.png").stat().st_size > 0
    table = compare_curves([tmp_path / "long", tmp_path / "short"], [2, 4])
    rows = {}
    for line in table.splitlines()[2:]:
        name, *cells = [c.strip() for c in line.strip("|").split("|")]
        rows[name] = cells
    assert rows == {"long": ["6.00, 0.6000", "3.00, 0.3000"], "short": ["5.00, 0.5000", "-"]}


def test_sizes_reads_parameters_and_test_metrics_and_measures_flatness(tmp_path):
    from hqc_qiskit.studies import best_epoch, largest_training_rise, last_improvement, main, size_accuracy

    _fake_run(tmp_path, "big", [1.0, 0.6, 0.4, 0.3], 0.30)
    _fake_run(tmp_path, "tiny", [0.9, 0.5], 0.50)
    for name, n in (("big", 5000), ("tiny", 100)):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        (tmp_path / name / "summary.json").write_text(json.dumps({**summary, "n_parameters": n}))
    # a run whose summary has no test block (older runs) is read from hqc-qiskit evaluate's test_metrics.json;
    # where both exist the summary wins (training rewrites it when a run is resumed)
    summary = json.loads((tmp_path / "big" / "summary.json").read_text())
    (tmp_path / "big" / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "test"}))
    for name in ("big", "tiny"):
        (tmp_path / name / "test_metrics.json").write_text(json.dumps({"rmse_e_mev_atom": 1.5, "rmse_f_ev_a": 0.25}))
    rows = size_accuracy([tmp_path / "big", tmp_path / "tiny"])
    assert [r["run"] for r in rows] == ["tiny", "big"]
    assert (rows[1]["test_rmse_e_mev_atom"], rows[1]["test_rmse_f_ev_a"]) == (1.5, 0.25)
    assert (rows[0]["test_rmse_e_mev_atom"], rows[0]["epochs"]) == (5.0, 2)
    assert rows[1]["train_hours"] == pytest.approx(60.0 / 3600) and rows[1]["seconds_per_epoch"] == pytest.approx(15.0)
    main(["sizes", str(tmp_path / "tiny"), str(tmp_path / "big"), "--out", str(tmp_path / "s.png")])
    assert (tmp_path / "s.png").stat().st_size > 0

    assert rows[1]["best_epoch"] == 4.0
    assert rows[1]["largest_train_f_rise"] != rows[1]["largest_train_f_rise"]   # nan: the fake runs log no train F

    f = np.array([0.40, 0.30, 0.278, 0.403, 0.30])
    assert largest_training_rise({"train_rmse_f_ev_a": f}) == pytest.approx(0.403 / 0.278 - 1)
    assert largest_training_rise({"train_rmse_f_ev_a": np.array([0.4, 0.3, 0.2])}) == 0.0
    assert best_epoch({"epoch": np.arange(1.0, 6.0), "val_loss": np.array([3.0, np.nan, 1.0, 2.0, 1.5])}) == 3.0
    loss = np.array([5.0, 4.0, 3.0, 2.0, 2.5, 2.2])
    assert last_improvement({"val_loss": loss}, window=3) == pytest.approx((3.0 - 2.0) / 3.0)
    assert last_improvement({"val_loss": np.array([5.0, 2.0, 2.5, 2.2, 3.0])}, window=3) == 0.0
    assert last_improvement({"val_loss": loss}, window=6) != last_improvement({"val_loss": loss}, window=6)  # nan


def test_gradnorms_summarises_early_late_and_clip_counts(tmp_path, capsys):
    from hqc_qiskit.studies import gradient_norms

    run = tmp_path / "g"
    run.mkdir()
    means = [400.0, 300.0, 200.0, 50.0, 40.0, 30.0]
    peaks = [900.0, 700.0, 1500.0, 90.0, 80.0, 60.0]
    with open(run / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(METRIC_FIELDS)
        for k, (m, p) in enumerate(zip(means, peaks), start=1):
            row = {"epoch": k, "grad_norm_mean": m, "grad_norm_max": p}
            w.writerow([row.get(c, "") for c in METRIC_FIELDS])
    (row,) = gradient_norms([run], clip=100, window=3, out=tmp_path / "g.png")
    assert row["median_mean_first"] == 300.0 and row["median_mean_last"] == 40.0
    assert row["max"] == 1500.0 and row["epoch_of_max"] == 3
    assert row["share_of_epochs_mean_above_clip"] == pytest.approx(0.5)
    assert row["epochs_with_step_above_clip"] == 3      # peaks 900, 700, 1500; 90, 80, 60 are below
    assert "| g | 6 | 300.0 | 40.0 | 1500.0 (3) | 50% | 3 of 6 |" in capsys.readouterr().out
    (row,) = gradient_norms([run], clip=250, window=3)
    assert row["share_of_epochs_mean_above_clip"] == pytest.approx(2 / 6) and row["epochs_with_step_above_clip"] == 3
    assert (tmp_path / "g.png").exists()
    old = tmp_path / "old"
    _fake_run(tmp_path, "old", [1.0, 0.5], 0.5)   # no gradient norms recorded
    with pytest.raises(SystemExit, match="no gradient norms"):
        gradient_norms([old])
