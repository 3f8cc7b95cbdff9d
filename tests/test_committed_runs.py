"""The committed runs reproduce their reported test metrics: re-evaluating runs/<run>/best_model.pt on the run's
test file gives the RMSEs in its test_metrics.json (hqc-qiskit evaluate) or summary.json (trainer), the numbers
docs/results.md quotes. Default: the runs behind the headline numbers; -m slow: every committed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hqc_qiskit.config import load_config
from hqc_qiskit.evaluate import evaluate
from hqc_qiskit.studies import _test_metrics
from tests.conftest import ROOT

# the runs quoted in docs/results.md "At a glance" (best accuracy; HQC against CMLP)
HEADLINE = ["small_l2_cmlp_long", "l2_hqc_cz_clip100_long", "l2_cmlp_long"]


def _recorded(run: Path) -> dict | None:
    """Test RMSEs recorded for a run, as `studies sizes` reads them (summary.json's test block, else
    test_metrics.json); None for a run that has neither."""
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    try:
        return _test_metrics(run, summary)
    except SystemExit:
        return None


def _committed_runs() -> list[Path]:
    runs = sorted({p.parent for p in ROOT.glob("runs/**/best_model.pt")})
    return [r for r in runs if _recorded(r) and (r / "config.yaml").exists()]


def _check(run: Path) -> None:
    recorded = _recorded(run)
    # test_metrics.json names its data (relative to the repository root); the trainer's test set is the config's
    test_file = ROOT / recorded["data"] if "data" in recorded else load_config(run / "config.yaml").data.test
    assert test_file, f"{run}: no test file in its config"
    again = evaluate(run, test_file, device="cpu")
    for key in ("rmse_e_mev_atom", "rmse_f_ev_a"):
        assert again[key] == pytest.approx(recorded[key], rel=1e-4), (run.name, key)


def test_the_headline_runs_are_committed_with_metrics():
    runs = _committed_runs()
    assert set(HEADLINE) <= {r.name for r in runs} and len(runs) >= 30, [str(r) for r in runs]


@pytest.mark.parametrize("name", HEADLINE)
def test_headline_run_reproduces_its_test_metrics(name):
    _check(ROOT / "runs" / name)


@pytest.mark.slow
@pytest.mark.parametrize("run", _committed_runs(), ids=lambda r: str(r.relative_to(ROOT / "runs")))
def test_committed_run_reproduces_its_test_metrics(run):
    _check(run)
