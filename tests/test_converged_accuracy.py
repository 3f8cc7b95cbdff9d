"""The verdict of benchmarks/converged_accuracy.py (issue 7's third target) from its runs' reports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("converged_accuracy", ROOT / "benchmarks" / "converged_accuracy.py")
converged_accuracy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converged_accuracy)
compare = converged_accuracy.compare
# the training settings that make two configs' steps the same apart from the model
SAME_STEP = ("batch_size", "lr", "amsgrad", "weight_decay", "decoupled_weight_decay", "scheduler", "ema_decay",
             "energy_weight", "forces_weight", "stress_weight", "grad_clip_norm")


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


def _stopped_run(run_dir, val_losses, stop_reason):
    run_dir.mkdir()
    rows = ["epoch,val_loss"] + [f"{i + 1},{v}" for i, v in enumerate(val_losses)]
    (run_dir / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run_dir / "summary.json").write_text(f'{{"stop_reason": "{stop_reason}"}}')
    return run_dir


def test_converged_means_stopped_early_after_the_benchmarks_own_patience(tmp_path):
    """Epochs since the best validation loss come from metrics.csv (a tie is not better); a run that stopped
    early with a smaller patience than the benchmark asks is not converged, and neither is one stopped otherwise."""
    ca = converged_accuracy
    run = _stopped_run(tmp_path / "a", [5.0, 3.0, 4.0, 3.0, 3.5], "early_stopping")
    loss, val_f = ca.validation(run)
    assert loss == [5.0, 3.0, 4.0, 3.0, 3.5] and val_f == []
    assert ca.epochs_since_best(loss) == 3
    assert ca.converged(ca.summary(run), loss, 3) and not ca.converged(ca.summary(run), loss, 4)
    other = _stopped_run(tmp_path / "b", [5.0, 3.0, 4.0, 4.0], "max_minutes")
    assert not ca.converged(ca.summary(other), ca.validation(other)[0], 1)
    assert ca.validation(tmp_path / "none") == ([], []) and ca.summary(tmp_path / "none") is None
    assert ca.epochs_since_best([]) is None and not ca.converged(None, [], 0)


def test_recent_gain_is_the_fall_of_the_best_validation_f():
    """Best of all epochs against the best before the last ``epochs``: 0.5 -> 0.4 is a 20% fall; too short: None."""
    assert converged_accuracy.recent_gain([0.6, 0.5, 0.55, 0.4], epochs=2) == pytest.approx(0.2)
    assert converged_accuracy.recent_gain([0.6, 0.5], epochs=2) is None


def test_each_configs_patience_is_periods_of_its_own_scheduler():
    """Every config gets the same number of its scheduler's periods: small_cmlp waits 5 epochs per reduction, the
    paper's CMLP 50 (the paper's code), so 10 periods are 50 and 500 epochs."""
    assert converged_accuracy.patience("small_cmlp", 10) == 50
    assert converged_accuracy.patience("cmlp", 10) == 500


def test_the_third_pair_differs_in_architecture_alone():
    """runs/cmlp_small_recipe.yaml is the paper's CMLP model (cmlp.yaml's model section, unchanged) trained with
    small_cmlp's optimizer, scheduler, batch and loss weights; from cmlp.yaml it differs only in the decay mode and the
    scheduler's patience, so the pair cmlp_small_recipe:small_cmlp compares architectures, and its patience is 50."""
    from hqc_qiskit.config import load_config

    cfg = {name: load_config(ROOT / "runs" / f"{name}.yaml") for name in ("cmlp", "cmlp_small_recipe", "small_cmlp")}
    assert cfg["cmlp_small_recipe"].model == cfg["cmlp"].model
    for key in SAME_STEP:
        assert getattr(cfg["cmlp_small_recipe"].train, key) == getattr(cfg["small_cmlp"].train, key), key
    paper, ours = cfg["cmlp"].train.model_dump(), cfg["cmlp_small_recipe"].train.model_dump()
    assert {k for k in paper if paper[k] != ours[k]} == {"decoupled_weight_decay", "scheduler"}
    assert paper["scheduler"] | {"patience": 5} == ours["scheduler"]
    assert converged_accuracy.patience("cmlp_small_recipe", 10) == 50
    assert "cmlp_small_recipe:small_cmlp" in converged_accuracy.DEFAULT_PAIRS.split(",")


def test_the_fourth_pair_shares_the_third_pairs_optimizer():
    """small_l2_cmlp, the fast config set against cmlp_small_recipe in the fourth default pair, trains with the same
    optimizer, scheduler, batch and loss weights (so that pair, too, compares architectures), and on its own
    small architecture, not the paper's."""
    from hqc_qiskit.config import load_config

    ref, fast = (load_config(ROOT / "runs" / f"{name}.yaml") for name in ("cmlp_small_recipe", "small_l2_cmlp"))
    assert {key for key in SAME_STEP if getattr(ref.train, key) != getattr(fast.train, key)} == set()
    assert fast.model.hidden_irreps != ref.model.hidden_irreps
    assert "cmlp_small_recipe:small_l2_cmlp" in converged_accuracy.DEFAULT_PAIRS.split(",")


@pytest.mark.parametrize("run_dir", sorted(p.parent for p in (ROOT / "runs" / "converged").glob("*/config.yaml")),
                         ids=lambda p: p.name)
def test_each_converged_run_trained_with_the_benchmarks_settings(run_dir):
    """Some runs under runs/converged began as longer runs of the same config and were copied there (README): their
    config.yaml must be what the benchmark builds for that config (the config's own settings plus the fast-start
    recipe, all training data), apart from where the run is written, when it stops, its device and its threads."""
    from hqc_qiskit.config import _map_paths, load_config

    class Args:   # the benchmark's command line as far as the training settings go
        max_train, device, max_minutes, threads = None, "auto", None, None

    def flat(raw: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in raw.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
        return out

    def settings(cfg) -> dict:
        raw = cfg.model_dump(mode="json")
        _map_paths(raw, lambda value: str(Path(value).resolve()))   # every path field, loaded relative to the cwd
        return flat(raw)

    ours = settings(load_config(run_dir / "config.yaml"))
    bench = settings(load_config(ROOT / "runs" / f"{run_dir.name}.yaml",
                                 converged_accuracy.overrides(Args, run_dir, converged_accuracy.patience(run_dir.name, 10))))
    free = {"output_dir", "train.max_epochs", "train.max_minutes", "train.early_stopping_patience", "train.device",
            "train.num_threads"}
    assert {k for k in ours.keys() | bench.keys() if ours.get(k) != bench.get(k)} <= free
