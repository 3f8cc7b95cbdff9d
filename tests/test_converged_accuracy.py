"""The verdict of benchmarks/converged_accuracy.py (issue 7's third target) from its runs' reports."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("converged_accuracy", ROOT / "benchmarks" / "converged_accuracy.py")
converged_accuracy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converged_accuracy)
compare = converged_accuracy.compare


def run(config: str, e: float, f: float, converged: bool) -> dict:
    return {"config": config, "trained": True, "converged": converged, "test_rmse_e_mev_atom": e, "test_rmse_f_ev_a": f}


@pytest.mark.parametrize(("paper_done", "fast_done", "fast_e", "start"), [
    (True, True, 10.5, "met"),
    (True, True, 11.5, "not met"),
    (False, True, 11.5, "not met (expected to stay so: cmlp has not converged"),   # the paper run can only improve
    (False, True, 10.5, "met (provisional: not converged: cmlp)"),
    (True, False, 10.5, "met (expected to stay so: small_cmlp has not converged"),   # the fast run can only improve
    (True, False, 11.5, "not met (provisional: not converged: small_cmlp)"),
    (False, False, 10.5, "met (provisional: not converged: cmlp, small_cmlp)"),
])
def test_the_verdict_says_what_convergence_settles(paper_done, fast_done, fast_e, start):
    row = compare(run("cmlp", 10.0, 0.30, paper_done), run("small_cmlp", fast_e, 0.30, fast_done))
    assert row["ratio_e"] == pytest.approx(fast_e / 10.0) and row["ratio_f"] == pytest.approx(1.0)
    assert row["verdict"].startswith(start), row["verdict"]


def test_an_untrained_run_is_named_and_gives_no_ratio():
    row = compare(run("cmlp", 10.0, 0.30, False), {"config": "small_cmlp", "trained": False})
    assert row["verdict"] == "not measured: small_cmlp not trained" and "ratio_e" not in row
