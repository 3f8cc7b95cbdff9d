"""Trainer: loss decreases, resume continues identically, engine errors, config errors, evaluate, ASE."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ase.calculators.singlepoint import SinglePointCalculator

from hqc_qiskit.config import load_config
from hqc_qiskit.errors import ConfigError, EngineError
from hqc_qiskit.train import Trainer
from tests.conftest import DATA


def _rows(run_dir):
    with open(run_dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_loss_decreases(tiny_config):
    cfg = tiny_config(train__max_epochs=6, train__lr=0.02)
    summary = Trainer(cfg, progress=False).fit()
    rows = _rows(cfg.run_dir())
    losses = [float(r["train_loss"]) for r in rows]
    assert len(rows) == 6 and summary["epochs"] == 6
    assert losses[-1] < 0.7 * losses[0]
    for name in ("config.yaml", "checkpoint.pt", "best_model.pt", "summary.json", "learning_curve.png"):
        assert (cfg.run_dir() / name).exists(), name
    assert "rmse_f_ev_a" in json.loads((cfg.run_dir() / "summary.json").read_text())["test"]


# the fast-start recipe: 2 steps per epoch, so a resume at epoch 2 lands inside the 5-step warm-up
FAST_START = {"train__warmup_steps": 5, "train__ema_warmup": True, "model__reference_energies": "fit_residual"}


@pytest.mark.parametrize("recipe", [{}, FAST_START], ids=["paper", "fast_start"])
def test_same_seed_same_numbers_and_resume_identical(tiny_config, tmp_path, recipe):
    full = tiny_config(output_dir=str(tmp_path / "full"), train__max_epochs=4, **recipe)
    Trainer(full, progress=False).fit()
    # "killed" after 2 epochs: the checkpoint of epoch 2 is all that survives, plus a metrics row of a lost epoch 3
    part = tiny_config(output_dir=str(tmp_path / "part"), train__max_epochs=2, **recipe)
    Trainer(part, progress=False).fit()
    with open(part.run_dir() / "metrics.csv", "a") as fh:
        fh.write("3,0.01,999,999,999,999,999,999,999,1,1\n")
    resumed = tiny_config(output_dir=str(tmp_path / "part"), train__max_epochs=4, **recipe)
    Trainer(resumed, resume=True, progress=False).fit()
    a = torch.load(full.run_dir() / "checkpoint.pt", weights_only=False)
    b = torch.load(part.run_dir() / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 4
    for key in a["model_state"]:
        torch.testing.assert_close(a["model_state"][key], b["model_state"][key], rtol=0, atol=0)
    rows_a, rows_b = _rows(full.run_dir()), _rows(part.run_dir())
    assert [r["epoch"] for r in rows_b] == ["1", "2", "3", "4"]
    for ra, rb in zip(rows_a, rows_b):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_rmse_f_ev_a"] == rb["val_rmse_f_ev_a"]


def test_restart_from_best_continues_a_run_whose_checkpoint_is_lost(tiny_config):
    """checkpoint.pt gone (a fresh checkout has only the committed best_model.pt): the run goes on from the best
    model's weights, epoch, learning rate and wall time with a fresh optimizer, and says so in summary.json."""
    cfg = tiny_config(train__max_epochs=3, **FAST_START)
    Trainer(cfg, progress=False).fit()
    run = cfg.run_dir()
    best = torch.load(run / "best_model.pt", weights_only=False)
    with open(run / "metrics.csv", "a") as fh:   # a row after the best epoch: its state is lost with the checkpoint
        fh.write(f"{best['epoch'] + 1},0.01,999,999,999,999,999,999,999,1,1\n")
    with pytest.raises(ConfigError, match="checkpoint.pt exists: continue the run exactly with --resume"):
        Trainer(tiny_config(train__max_epochs=5, **FAST_START), restart_from_best=True, progress=False)
    with pytest.raises(ConfigError, match="exclude each other"):
        Trainer(tiny_config(train__max_epochs=5, **FAST_START), resume=True, restart_from_best=True, progress=False)
    (run / "checkpoint.pt").unlink()
    row = {r["epoch"]: r for r in _rows(run)}[str(best["epoch"])]

    trainer = Trainer(tiny_config(train__max_epochs=best["epoch"] + 2, **FAST_START), restart_from_best=True,
                      progress=False)
    assert trainer.epoch == best["epoch"] and trainer.best_val == best["val_loss"]
    for key, value in best["model_state"].items():
        torch.testing.assert_close(trainer.model.state_dict()[key], value, rtol=0, atol=0)
        torch.testing.assert_close(trainer.ema.module.state_dict()[key], value, rtol=0, atol=0)
    per_epoch = math.ceil(len(trainer.graphs.train) / trainer.config.train.batch_size)   # optimizer steps
    assert int(trainer.ema.n_averaged) == best["epoch"] * per_epoch   # the EMA's decay goes on where it was
    # a new warm-up towards the learning rate of the best epoch's row
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(float(row["lr"]) / 5)
    assert trainer.scheduler.best == best["val_loss"]
    summary = trainer.fit()

    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, best["epoch"] + 3))   # the lost epoch's row is gone
    assert float(rows[best["epoch"]]["wall_seconds"]) > float(row["wall_seconds"])
    assert summary["epochs"] == best["epoch"] + 2
    assert [r["epoch"] for r in summary["restarts"]] == [best["epoch"]]
    assert json.loads((run / "summary.json").read_text())["restarts"] == summary["restarts"]
    # resuming exactly afterwards keeps the record of the restart
    resumed = Trainer(tiny_config(train__max_epochs=best["epoch"] + 3, **FAST_START), resume=True, progress=False)
    assert resumed.fit()["restarts"] == summary["restarts"]
    # docs/evidence/amsgrad_memory.py reads what the restart lost: the running maximum is never below the average
    import importlib.util

    spec = importlib.util.spec_from_file_location("amsgrad_memory", Path(__file__).parents[1] / "docs" / "evidence"
                                                  / "amsgrad_memory.py")
    memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory)
    steps, quantiles = memory.ratio_quantiles(str(run / "checkpoint.pt"))
    assert steps == (resumed.epoch - best["epoch"]) * per_epoch   # the fresh optimizer's steps since the restart
    assert all(q >= 1.0 for q in quantiles) and quantiles == sorted(quantiles)


def test_restart_from_best_without_a_best_model_is_clear(tiny_config):
    with pytest.raises(ConfigError, match="best_model.pt: no best model to restart from"):
        Trainer(tiny_config(), restart_from_best=True, progress=False)


@pytest.mark.parametrize("decoupled", [False, True])
def test_weight_decay_mode_reaches_the_optimizer(tiny_config, decoupled):
    """Coupled L2 (the paper's code) by default; decoupled (AdamW) on request. One step with a zero loss
    gradient tells them apart: coupled Adam normalises the decay term to a ~lr step, decoupled shrinks by lr*wd."""
    trainer = Trainer(tiny_config(train__weight_decay=0.1, train__decoupled_weight_decay=decoupled), progress=False)
    group = trainer.optimizer.param_groups[0]
    assert group["decoupled_weight_decay"] is decoupled and group["weight_decay"] == 0.1
    p = trainer.model.reference_energies.new_ones(3).requires_grad_()
    opt = type(trainer.optimizer)([p], **{k: v for k, v in group.items() if k != "params"})
    p.grad = torch.zeros_like(p)
    opt.step()
    lr = group["lr"]
    expected = 1 - lr * 0.1 if decoupled else 1 - lr
    torch.testing.assert_close(p.detach(), torch.full_like(p, expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("stop", "warned"), [(3, True), (4, False), (None, False)])
def test_early_stopping_that_cannot_follow_a_learning_rate_reduction_is_warned(tiny_config, capsys, stop, warned):
    """The scheduler lowers the rate after patience + 1 epochs without improvement; early stopping at or below
    its patience would end every plateau at the first learning rate."""
    Trainer(tiny_config(train__early_stopping_patience=stop, train__scheduler={"patience": 3}), progress=False)
    err = " ".join(capsys.readouterr().err.split())
    assert ("train.early_stopping_patience (3) is not above train.scheduler.patience (3)" in err) is warned
    assert ("is not above train.scheduler.patience" in err) is warned


def test_plateau_warning_when_forces_are_not_learned(tiny_config, monkeypatch):
    """A model that has not moved (lr ~ 0) still predicts ~zero forces: the trainer says so, once, with
    the hint that fits the optimizer settings, and records it in summary.json."""
    from hqc_qiskit import train as train_module

    monkeypatch.setattr(train_module, "PLATEAU_CHECK_EPOCH", 2)
    cfg = tiny_config(train__max_epochs=3, train__lr=1e-9)
    with pytest.warns(train_module.PlateauWarning, match="decoupled_weight_decay=true") as record:
        summary = Trainer(cfg, progress=False).fit()
    assert len([w for w in record if w.category is train_module.PlateauWarning]) == 1
    assert summary["warnings"] and "predicts almost no forces" in summary["warnings"][0]
    assert json.loads((cfg.run_dir() / "summary.json").read_text())["warnings"] == summary["warnings"]
    cfg = tiny_config(train__max_epochs=2, train__lr=1e-9, train__decoupled_weight_decay=True, output_dir=str(cfg.run_dir()) + "2")
    with pytest.warns(train_module.PlateauWarning, match="leave it later"):
        Trainer(cfg, progress=False).fit()


def test_spike_warning_once_per_divergence_with_a_clip_suggestion(tiny_config, monkeypatch):
    """A validation loss above SPIKE_FACTOR x the best so far is reported once per episode, with the epoch's
    largest gradient norm and a clip value from the earlier epochs' maxima; it lands in summary.json."""
    from hqc_qiskit import train as train_module

    real_validate = Trainer.validate

    def validate(self):
        out = real_validate(self)
        if self.epoch in (3, 4, 6):        # two episodes: epochs 3-4, then 6
            out["val_loss"] *= 10.0
        return out

    monkeypatch.setattr(Trainer, "validate", validate)
    cfg = tiny_config(train__max_epochs=6)
    with pytest.warns(train_module.SpikeWarning) as record:
        summary = Trainer(cfg, progress=False).fit()
    spikes = [str(w.message) for w in record if w.category is train_module.SpikeWarning]
    assert [m.split(":")[0] for m in spikes] == ["epoch 3", "epoch 6"]
    rows = _rows(cfg.run_dir())
    typical = float(np.median([float(r["grad_norm_max"]) for r in rows[:2]]))
    assert f"grad_clip_norm={train_module._two_digits(typical)}" in spikes[0]
    assert f"{float(rows[2]['grad_norm_max']):.4g}" in spikes[0]
    assert summary["warnings"] == spikes
    # with clipping on, the hint is about the clip, not a suggestion to add one
    monkeypatch.setattr(Trainer, "validate", validate)
    cfg = tiny_config(train__max_epochs=3, train__grad_clip_norm=5.0, output_dir=str(cfg.run_dir()) + "_clip")
    with pytest.warns(train_module.SpikeWarning, match="clipped at 5"):
        Trainer(cfg, progress=False).fit()


def test_resume_without_checkpoint_is_clear(tiny_config):
    with pytest.raises(ConfigError, match="nothing to resume"):
        Trainer(tiny_config(), resume=True, progress=False)


def test_resume_refuses_corrupt_checkpoints_and_other_models(tiny_config):
    """A truncated checkpoint, or one another model wrote, is named; torch's own errors were tracebacks."""
    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.errors import HQCError

    cfg = tiny_config(train__max_epochs=1)
    Trainer(cfg, progress=False).fit()
    with pytest.raises(ConfigError, match="written by another model than this config builds.*first difference: size mismatch"):
        Trainer(tiny_config(train__max_epochs=2, model__embedding_dim=4), resume=True, progress=False)
    checkpoint = cfg.run_dir() / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    with pytest.raises(HQCError, match="checkpoint.pt: unreadable checkpoint, truncated"):
        Trainer(tiny_config(train__max_epochs=2), resume=True, progress=False)
    with pytest.raises(HQCError, match="checkpoint.pt: unreadable checkpoint"):
        load_model(checkpoint)


def test_fresh_start_refuses_a_finished_run_unless_overwrite(tiny_config):
    """A forgotten --resume must not wipe a run: a fresh Trainer refuses a directory with a checkpoint; with
    overwrite it starts over there and the old run's checkpoint, best model and summary are gone at once."""
    cfg = tiny_config(train__max_epochs=1)
    Trainer(cfg, progress=False).fit()
    run = cfg.run_dir()
    before = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "best_model.pt", "metrics.csv")}
    with pytest.raises(ConfigError, match=r"already holds a run \(checkpoint.pt, best_model.pt\).*--resume.*--overwrite"):
        Trainer(tiny_config(train__max_epochs=2), progress=False)
    assert {name: (run / name).read_bytes() for name in before} == before   # untouched
    (run / "checkpoint.pt").unlink()   # a best model alone is a run too
    with pytest.raises(ConfigError, match=r"already holds a run \(best_model.pt\)"):
        Trainer(tiny_config(train__max_epochs=2), progress=False)
    Trainer(tiny_config(train__max_epochs=2), progress=False, overwrite=True)
    assert not any((run / name).exists() for name in ("checkpoint.pt", "best_model.pt", "summary.json"))
    assert len(_rows(run)) == 0   # a new metrics.csv, header only


def test_quantum_readout_trains_with_forces(tiny_config):
    cfg = tiny_config(model__readout={"kind": "quantum", "ansatz": "cz", "engine": "exact", "n_qubits": 4, "n_layers": 2},
                      train__max_epochs=4, train__lr=0.02)
    Trainer(cfg, progress=False).fit()
    losses = [float(r["train_loss"]) for r in _rows(cfg.run_dir())]
    assert losses[-1] < 0.8 * losses[0]


def test_qnn_engine_refuses_force_training_but_trains_on_energies(tiny_config):
    readout = {"kind": "quantum", "ansatz": "cz", "engine": "qnn", "n_qubits": 2, "n_layers": 1}
    with pytest.raises(EngineError, match="engine: exact"):
        Trainer(tiny_config(model__readout=readout), progress=False)
    # no test file: the final test metrics include forces, which EstimatorQNN computes by the parameter-shift rule
    # for every input of 100 frames (minutes; the training step is what this test is about)
    cfg = tiny_config(model__readout=readout, model__n_layers=1, train__forces_weight=0.0, train__max_epochs=1,
                      train__ema_decay=None, data__max_train=2, data__max_val=1, data__test=None)
    trainer = Trainer(cfg, progress=False)
    before = [p.detach().clone() for p in trainer.model.readouts[0].circuit.parameters()]
    trainer.fit()
    after = list(trainer.model.readouts[0].circuit.parameters())
    assert any((a - b).abs().max() > 0 for a, b in zip(after, before))


@pytest.mark.parametrize("override, said", [
    ("train.lr=.nan", "train.lr: Input should be a finite number"), ("train.lr=0", "train.lr: Input should be greater than 0"),
    ("data.max_train=0", "data.max_train: Input should be greater than or equal to 1"),
    ("train.ema_decay=1", "train.ema_decay: Input should be less than 1"),
    ("model.radial_mlp=[8, 0]", "model.radial_mlp.1: Input should be greater than or equal to 1"),
    ("model.reference_energies={Si: .inf}", "finite number"),
    ("train.scheduler.factor=1", "train.scheduler.factor: Input should be less than 1"),
    ("train.forces_weight=0", "energy_weight, forces_weight and stress_weight are all 0")])
def test_config_refuses_numbers_that_cannot_train(tmp_path, override, said):
    """Each of these once trained silently wrong or died in torch (NaN lr; max_train 0 meant all the data)."""
    good = tmp_path / "good.yaml"
    good.write_text("name: x\ndata: {train: a.xyz}\ntrain: {energy_weight: 0}\n")
    with pytest.raises(ConfigError, match=re.escape(said)):
        load_config(good, [override])
    load_config(good)   # the file itself is fine


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {train: a.xyz}\nmodel: {hiden_irreps: 8x0e}\n")
    with pytest.raises(ConfigError, match="model.hiden_irreps"):
        load_config(bad)
    bad.write_text("name: x\ndata: {train: a.xyz}\nmodel: {readout: {kind: quantum, ansatz: nope}}\n")
    with pytest.raises(ConfigError, match="unknown ansatz 'nope'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("name: x\ndata: {train: a.xyz}\n")
    cfg = load_config(good, ["train.lr=0.5", "model.readout={kind: quantum, ansatz: qft_cz}"])
    assert cfg.train.lr == 0.5 and cfg.model.readout.ansatz == "qft_cz"
    assert cfg.data.train == tmp_path / "a.xyz"  # relative to the YAML file


def test_saved_run_config_reloads_to_the_same_files(tmp_path, monkeypatch):
    """A run's config.yaml names the files the run used when loaded from anywhere (paths relative to it)."""
    from hqc_qiskit.config import save_config

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.yaml").write_text(
        "name: x\ndata: {train: ../data/a.xyz, val: /abs/b.xyz}\noutput_dir: ../runs/x\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("configs/c.yaml"), ["data.test=data/c.xyz"])
    (tmp_path / "runs" / "x").mkdir(parents=True)
    save_config(cfg, Path("runs/x/config.yaml"))
    monkeypatch.chdir(tmp_path / "configs")
    again = load_config(tmp_path / "runs" / "x" / "config.yaml")
    for field in ("train", "val", "test"):
        assert getattr(again.data, field).resolve() == (tmp_path / getattr(cfg.data, field)).resolve(), field
    assert Path(again.output_dir).resolve() == (tmp_path / "runs" / "x").resolve()
    assert again.data.val == Path("/abs/b.xyz")
    assert again.model == cfg.model and again.train == cfg.train


def test_evaluate_and_calculator_md(tiny_config, val_frames):
    from ase.md.verlet import VelocityVerlet
    from ase.md.velocitydistribution import thermalize_momenta
    from ase import units

    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.data.graph import atoms_to_graph, collate, to_device
    from hqc_qiskit.evaluate import evaluate

    cfg = tiny_config(train__max_epochs=2)
    Trainer(cfg, progress=False).fit()
    m = evaluate(cfg.run_dir(), cfg.data.test, plot=cfg.run_dir() / "parity.png")
    assert m["rmse_e_mev_atom"] > 0 and m["rmse_f_ev_a"] > 0 and (cfg.run_dir() / "parity.png").exists()
    calc = HQCCalculator(cfg.run_dir())
    atoms = val_frames[0].copy()
    atoms.calc = calc
    e = atoms.get_potential_energy()
    out = calc.model(to_device(collate([atoms_to_graph(atoms, 4.5, ["Si"])]), "cpu", torch.float32))
    assert e == pytest.approx(out["energy"].item(), rel=1e-6)
    assert atoms.get_forces().shape == (64, 3)
    thermalize_momenta(atoms, temperature_K=2000, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.run(3)
    assert np.isfinite(atoms.get_potential_energy())


def test_shipped_configs_validate_and_point_at_shipped_data():
    from tests.conftest import ROOT

    configs = sorted((ROOT / "runs").glob("*.yaml"))
    assert len(configs) >= 13
    for path in configs:
        cfg = load_config(path)
        assert cfg.data.train.exists(), path
    paper = load_config(ROOT / "runs" / "cmlp.yaml").model
    assert paper.n_layers == 5 and paper.lmax == 3 and paper.hidden_irreps == "64x0e + 64x0o + 64x1o + 64x1e + 8x2o + 8x2e"
    assert load_config(ROOT / "runs" / "hqc_qft_cz.yaml").model.readout.ansatz == "qft_cz"


def _config_keys(model, prefix=""):
    """Dotted names of every leaf key of a config model; readout variants (a union) are walked too."""
    import typing

    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        subs = [a for a in (field.annotation, *typing.get_args(field.annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)]
        if subs:
            for sub in subs:
                yield from _config_keys(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_every_config_key_is_documented():
    """docs/configuration.md names every key: dotted, or as `name:` inside its parent's row (readouts)."""
    from hqc_qiskit.config import RunConfig
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "configuration.md").read_text()
    keys = list(_config_keys(RunConfig))
    assert "train.plot_every_minutes" in keys and "model.readout.ansatz" in keys
    missing = [k for k in keys if f"`{k}`" not in text and f"{k.rsplit('.', 1)[-1]}:" not in text]
    assert not missing, f"undocumented config keys: {missing}"


def test_committed_run_configs_reload_to_their_run_and_data():
    """Each committed runs/<run>/config.yaml (and runs/<study>/<run>/config.yaml) loads from its folder to that
    folder and the shipped data."""
    from tests.conftest import ROOT

    saved = sorted((ROOT / "runs").glob("**/config.yaml"))
    assert len(saved) >= 36
    for path in saved:
        cfg = load_config(path)
        assert Path(cfg.output_dir).resolve() == path.parent.resolve(), path
        assert cfg.data.train.exists() and cfg.data.val.exists(), path


def test_fit_residual_reference_energies_remove_the_initial_offset(tiny_config):
    """'fit_residual' absorbs the untrained model's mean energy: on the structures it was fitted to, the
    initial per-atom energy errors average to zero (least squares with one element), while 'fit' leaves
    the model's own offset in place."""
    from hqc_qiskit.train import RESIDUAL_FIT_STRUCTURES, predict

    def mean_error(trainer):
        graphs = trainer.graphs.train[:RESIDUAL_FIT_STRUCTURES]
        p = predict(trainer.model, graphs, 10, trainer.device, trainer.dtype, forces=False)
        return float(np.mean((p["e_pred"] - p["e_ref"]) / p["n_atoms"]))

    plain = Trainer(tiny_config(model__reference_energies="fit"), progress=False)
    residual = Trainer(tiny_config(model__reference_energies="fit_residual"), progress=False)
    assert abs(mean_error(plain)) > 1e-3                     # the untrained model has an offset (eV/atom)
    assert abs(mean_error(residual)) < 5e-5                  # float32 rounding of ~7000 eV totals
    shift = float(residual.model.reference_energies[0] - plain.model.reference_energies[0])
    assert shift == pytest.approx(-mean_error(plain), abs=5e-5)


@pytest.mark.parametrize("ema_warmup", [False, True])
def test_ema_keeps_the_models_buffers(tiny_config, ema_warmup):
    """The trainer's EMA averages parameters, never the model's constant buffers: integer index tables
    and constant float tables stay bit-identical to the model's (the first warm-up EMA truncated the
    index tables, and the EMA model's forces were garbage)."""
    trainer = Trainer(tiny_config(train__max_epochs=2, train__ema_warmup=ema_warmup), progress=False)
    trainer.fit()
    buffers = dict(trainer.model.named_buffers())
    assert any(not b.is_floating_point() for b in buffers.values())
    for name, averaged in trainer.ema.module.named_buffers():
        assert torch.equal(averaged, buffers[name]), name


def test_learning_rate_warmup_and_ema_warmup(tiny_config):
    """warmup_steps: lr = lr * (1/W + (1 - 1/W) k / W) after k steps, then lr (2 steps per epoch here);
    ema_warmup: decay (1 + n) / (10 + n) while that is below ema_decay, so the first average is the model."""
    from torch.optim.swa_utils import AveragedModel

    from hqc_qiskit.ema import warmup_ema_avg_fn

    cfg = tiny_config(train__max_epochs=4, train__warmup_steps=5, train__scheduler__patience=100)
    Trainer(cfg, progress=False).fit()
    lrs = [float(r["lr"]) for r in _rows(cfg.run_dir())]
    expected = [0.01 * min(1.0, 0.2 + 0.8 * k / 5) for k in (2, 4, 6, 8)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)

    m = torch.nn.Linear(1, 1, bias=False)
    ema = AveragedModel(m, avg_fn=warmup_ema_avg_fn(0.5))
    values = []
    for w in (1.0, 2.0, 3.0, 4.0):
        m.weight.data.fill_(w)
        ema.update_parameters(m)
        values.append(ema.module.weight.item())
    e = [1.0]                                                # the first update copies the model
    for d, w in zip((2 / 11, 3 / 12, 4 / 13), (2.0, 3.0, 4.0)):   # n = 1, 2, 3: all below 0.5
        e.append(d * e[-1] + (1 - d) * w)
    np.testing.assert_allclose(values, e, rtol=1e-6)
    capped = AveragedModel(m, avg_fn=warmup_ema_avg_fn(0.1))   # decay never above ema_decay
    m.weight.data.fill_(0.0)
    capped.update_parameters(m)
    m.weight.data.fill_(1.0)
    capped.update_parameters(m)
    assert capped.module.weight.item() == pytest.approx(0.9)


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_bounds_the_norm_the_optimizer_sees(tiny_config, clip):
    """train.grad_clip_norm: every step sees a global gradient norm <= the limit; without it the tiny model's
    gradients exceed 1e-3 (so the clipped case is not trivially satisfied)."""
    trainer = Trainer(tiny_config(train__max_epochs=1, train__grad_clip_norm=clip), progress=False)
    norms = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    trainer.fit()
    assert len(norms) == 2
    if clip is None:
        assert max(norms) > 1e-3
    else:
        assert max(norms) <= clip * (1 + 1e-6)


def test_grad_norm_columns_are_the_norm_before_clipping(tiny_config):
    """One step per epoch (batch = all 8 frames): the recorded norm of epoch 1 equals the gradient norm of the
    loss at the initial weights, computed here by hand, although clipping to 1e-6 shrank that step."""
    from hqc_qiskit.data.graph import collate, to_device
    from hqc_qiskit.train import loss_fn

    cfg = tiny_config(train__batch_size=8, train__max_epochs=1, train__grad_clip_norm=1e-6)
    ref = Trainer(cfg, progress=False)   # same seed, same initial weights as the trainer below
    batch = to_device(collate(ref.graphs.train), ref.device, ref.dtype)
    loss = loss_fn(ref.model(batch, compute_forces=True, create_graph=True), batch,
                   cfg.train.energy_weight, cfg.train.forces_weight)
    loss.backward()
    expected = math.sqrt(sum(float((p.grad ** 2).sum()) for p in ref.model.parameters() if p.grad is not None))
    Trainer(cfg, progress=False).fit()
    row = _rows(cfg.run_dir())[0]
    assert expected > 1e-3
    assert float(row["grad_norm_max"]) == pytest.approx(expected, rel=1e-4)
    assert float(row["grad_norm_mean"]) == pytest.approx(expected, rel=1e-4)


def test_resume_keeps_an_older_metrics_header(tiny_config):
    """A run started before the grad-norm columns existed resumes with its own header and row width."""
    cfg = tiny_config(train__max_epochs=1)
    Trainer(cfg, progress=False).fit()
    path = cfg.run_dir() / "metrics.csv"
    old = [r[:-2] for r in csv.reader(path.open())]
    assert old[0][-1] == "wall_seconds"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(old)
    Trainer(tiny_config(train__max_epochs=2), resume=True, progress=False).fit()
    rows = list(csv.reader(path.open()))
    assert rows[0] == old[0] and len(rows) == 3 and all(len(r) == len(old[0]) for r in rows)


@pytest.mark.parametrize("every, calls", [(0, 4), (None, 1)])
def test_learning_curve_redrawn_during_training(tiny_config, monkeypatch, every, calls):
    """plot_every_minutes 0: after each of the 3 epochs and at the end; null: only at the end. The file is
    replaced atomically (no temporary file left behind)."""
    from hqc_qiskit import plots

    drawn = []
    real = plots.plot_learning_curve
    monkeypatch.setattr(plots, "plot_learning_curve", lambda csv_path, out: (drawn.append(out), real(csv_path, out)))
    cfg = tiny_config(train__plot_every_minutes=every)
    Trainer(cfg, progress=False).fit()
    assert len(drawn) == calls
    assert (cfg.run_dir() / "learning_curve.png").exists()
    assert not (cfg.run_dir() / "learning_curve.tmp.png").exists()


def test_devices_that_are_not_here_are_named():
    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.torch_device import resolve_device
    from tests.conftest import ROOT

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(ConfigError, match=f"device '{missing}': .*(no CUDA|GPU)"):
        resolve_device(missing)
    with pytest.raises(ConfigError, match=f"device '{missing}'"):
        HQCCalculator(ROOT / "runs" / "quick", device=missing)


def test_unknown_checkpoint_choice_is_an_error():
    """'--which foo' used to load the last checkpoint silently."""
    from hqc_qiskit.checkpoint import load_model
    from hqc_qiskit.errors import HQCError
    from tests.conftest import ROOT

    with pytest.raises(HQCError, match="'best' or 'last', not 'foo'"):
        load_model(ROOT / "runs" / "quick", which="foo")


def test_training_on_stress_labels(tiny_config, tmp_path, capsys):
    """train.stress_weight > 0: stress labels enter the loss (here another random tiny model's stresses, which the
    student can represent, trained on alone); metrics.csv gets stress columns and the stress error falls (no
    warning about validation without a stress); frames without a stress label are refused."""
    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.data.dataset import read_structures, write_structures
    from hqc_qiskit.model.potential import build_model
    from tests.conftest import TINY_MODEL

    torch.manual_seed(7)
    teacher = HQCCalculator(model=build_model(dict(TINY_MODEL, dtype="float64")))
    labelled = {}
    for name, part in (("train", "val"), ("val", "test")):
        frames = read_structures(DATA / f"si_liquid_3000K.{part}.extxyz.gz", index=":8")
        for atoms in frames:
            atoms.calc = teacher
            atoms.get_stress()
            results = dict(teacher.results)
            atoms.calc = SinglePointCalculator(atoms, **{k: results[k] for k in ("energy", "forces", "stress")})
        labelled[name] = tmp_path / f"{name}.extxyz"
        write_structures(labelled[name], frames)
    data = {"data__train": str(labelled["train"]), "data__val": str(labelled["val"]), "data__test": str(labelled["val"])}
    cfg = tiny_config(**data, train__stress_weight=1.0, train__energy_weight=0.0, train__forces_weight=0.0,
                      train__max_epochs=20)
    trainer = Trainer(cfg, progress=False)
    assert "no validation frame has a stress label" not in capsys.readouterr().err
    trainer.fit()
    rows = _rows(trainer.run_dir)
    stress = [float(r["train_rmse_stress_gpa"]) for r in rows]
    assert stress[-1] < 0.5 * stress[0], stress
    assert float(rows[-1]["val_rmse_stress_gpa"]) < float(rows[0]["val_rmse_stress_gpa"])
    plain = Trainer(tiny_config(**data, output_dir=str(tmp_path / "plain")), progress=False)   # weight 0: no columns
    assert "val_rmse_stress_gpa" not in plain.metric_fields
    with pytest.raises(ConfigError, match="none of the .* training frames .* has a stress label 'stress'"):
        Trainer(tiny_config(train__stress_weight=1.0, output_dir=str(tmp_path / "unlabelled")), progress=False)


def test_stress_term_covers_only_the_labelled_frames():
    """A batch mixing frames with and without a stress label: the collated labels are zero where missing and the
    mask says which are real; the stress term is the MSE over the labelled frames' components only, so what the
    model predicts for an unlabelled frame's stress does not change the loss; no labelled frame: no stress term."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from hqc_qiskit.data import keys as K
    from hqc_qiskit.data.dataset import read_structures
    from hqc_qiskit.data.graph import atoms_to_graph, collate
    from hqc_qiskit.train import loss_fn

    frames = read_structures(DATA / "si_liquid_3000K.val.extxyz.gz", index=":3")
    rng = np.random.default_rng(0)
    labels = [rng.normal(size=6) * 1e-2 for _ in frames]
    for k, atoms in enumerate(frames):
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        if k != 1:
            results["stress"] = labels[k]
        atoms.calc = SinglePointCalculator(atoms, **results)
    graphs = [atoms_to_graph(a, cutoff=4.5, species=["Si"], with_labels=True) for a in frames]
    batch = collate(graphs)
    assert batch[K.STRESS_MASK].tolist() == [True, False, True]
    assert torch.count_nonzero(batch[K.STRESS][1]) == 0
    out = {"energy": batch[K.ENERGY].clone(), "forces": batch[K.FORCES].clone(),
           "stress": torch.as_tensor(rng.normal(size=(3, 3, 3)) * 1e-2)}
    expected = torch.mean((out["stress"][[0, 2]] - batch[K.STRESS][[0, 2]]) ** 2)
    assert float(loss_fn(out, batch, 1.0, 1.0, 2.0)) == pytest.approx(2.0 * float(expected), rel=1e-12)
    out["stress"][1] += 5.0    # the unlabelled frame's prediction
    assert float(loss_fn(out, batch, 1.0, 1.0, 2.0)) == pytest.approx(2.0 * float(expected), rel=1e-12)
    unlabelled = collate([graphs[1]])
    assert K.STRESS not in unlabelled
    one = {"energy": unlabelled[K.ENERGY], "forces": unlabelled[K.FORCES], "stress": out["stress"][1:2]}
    assert float(loss_fn(one, unlabelled, 1.0, 1.0, 2.0)) == 0.0


def test_training_on_partly_stress_labelled_data(tiny_config, tmp_path, capsys):
    """Only some frames carry a stress (a DFT dataset with stresses for a few structures): training runs, says
    how many are labelled, and reports the stress RMSE over those; validation without any stress label gives
    no stress RMSE (empty column), not an error."""
    from hqc_qiskit.data.dataset import read_structures, write_structures

    train = read_structures(DATA / "si_liquid_3000K.val.extxyz.gz", index=":8")
    for k, atoms in enumerate(train):
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        if k % 4 == 0:
            results["stress"] = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]) * 1e-2
        atoms.calc = SinglePointCalculator(atoms, **results)
    write_structures(tmp_path / "train.extxyz", train)
    cfg = tiny_config(data__train=str(tmp_path / "train.extxyz"), train__stress_weight=1.0, train__max_epochs=2,
                      output_dir=str(tmp_path / "run"))
    trainer = Trainer(cfg, progress=False)
    err = " ".join(capsys.readouterr().err.split())
    assert "stress labels on 2 of 8 training and 0 of" in err
    assert "no validation frame has a stress label, so best_model.pt is picked on energies and forces alone" in err
    trainer.fit()
    rows = _rows(trainer.run_dir)
    assert all(np.isfinite(float(r["train_rmse_stress_gpa"])) for r in rows)
    assert all(r["val_rmse_stress_gpa"] == "" for r in rows)


@pytest.mark.parametrize("run", ["runs/density/small_l2_hqc_cz_density", "runs/noise_aware/l2_hqc_cz_eagle"])
def test_loading_a_model_again_copies_the_built_one_and_gives_the_same_numbers(run, val_frames):
    """load_model builds each configuration once and deep-copies it after (committees, scripts loading many runs):
    a first and a second load give exactly what building the model and loading its state by hand gives, and the
    copies share no tensor."""
    from hqc_qiskit.calculator import HQCCalculator
    from hqc_qiskit.checkpoint import _built, load_model, read_model_payload
    from hqc_qiskit.model.potential import build_model
    from tests.conftest import ROOT

    def energy_forces(model):
        atoms = val_frames[0].copy()
        atoms.calc = HQCCalculator(model=model)
        return atoms.get_potential_energy(), atoms.get_forces()

    def storages(model):
        return {t.data_ptr() for t in [*model.parameters(), *model.buffers()] if t.numel()}

    _, payload = read_model_payload(ROOT / run, "best", "cpu")
    by_hand = build_model(payload["model_config"])
    by_hand.load_state_dict(payload["model_state"])
    e_ref, f_ref = energy_forces(by_hand.eval().requires_grad_(False))
    _built.cache_clear()
    first, second = load_model(ROOT / run), load_model(ROOT / run)
    assert _built.cache_info().hits == 1 and _built.cache_info().misses == 1
    assert storages(first) and not storages(first) & storages(second)
    with torch.no_grad():
        next(first.parameters()).add_(1.0)      # changing one copy leaves the other as loaded
    for model in (second, load_model(ROOT / run)):
        e, f = energy_forces(model)
        assert e == e_ref and np.array_equal(f, f_ref)


def test_micro_batches_give_the_whole_batch_step(tiny_config, tmp_path):
    """train.micro_batch_size: a batch of 8 trained in passes of 3, 3 and 2 structures takes the same optimizer steps
    as one pass of 8 (float64; loss on E, F and stress with only some frames labelled, so every mean's denominator
    must be the whole batch's): same metrics rows and the same weights after 2 epochs, up to float rounding. And
    the losses of one pass per structure, divided by the whole batch's counts, add up to the whole batch's loss."""
    from hqc_qiskit.data.dataset import read_structures, write_structures
    from hqc_qiskit.data.graph import collate
    from hqc_qiskit.train import LossCounts, loss_fn

    train = read_structures(DATA / "si_liquid_3000K.val.extxyz.gz", index=":8")
    for k, atoms in enumerate(train):
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        if k in (0, 5):
            results["stress"] = np.array([1.0, 0.5, 1.0, 0.1, 0.0, -0.2]) * 1e-2
        atoms.calc = SinglePointCalculator(atoms, **results)
    write_structures(tmp_path / "train.extxyz", train)
    runs = {}
    for micro in (None, 3):
        cfg = tiny_config(data__train=str(tmp_path / "train.extxyz"), model__dtype="float64", train__batch_size=8,
                          train__max_epochs=2, train__stress_weight=10.0, train__micro_batch_size=micro,
                          output_dir=str(tmp_path / f"micro_{micro}"))
        trainer = Trainer(cfg, progress=False)
        trainer.fit()
        runs[micro] = (trainer, _rows(trainer.run_dir))
    (whole, rows_whole), (micro, rows_micro) = runs[None], runs[3]
    for ra, rb in zip(rows_whole, rows_micro, strict=True):
        for key in ("train_loss", "train_rmse_e_mev_atom", "train_rmse_f_ev_a", "train_rmse_stress_gpa",
                    "grad_norm_max", "val_loss", "val_rmse_f_ev_a"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-9), key
    for (name, a), b in zip(whole.model.state_dict().items(), micro.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12, msg=name)
    # the loss itself: passes of 1 structure with the whole batch's counts add up to the whole batch's loss
    model, graphs = whole.model, whole.graphs.train
    counts = LossCounts.of_graphs(graphs)
    assert counts == LossCounts(8, 8 * 64 * 3, 18)

    def loss_of(part):
        batch = collate(part)
        out = model(batch, compute_forces=True, compute_stress=True)
        return loss_fn(out, batch, 1.0, 100.0, 10.0, counts).item()

    assert sum(loss_of([g]) for g in graphs) == pytest.approx(loss_of(graphs), rel=1e-12)


@pytest.fixture
def ieee_subnormals():
    """The process in torch's default floating-point mode (subnormals kept) before and after the test."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def _flushes_subnormals() -> bool:
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


@pytest.mark.parametrize("flush", [True, False])
def test_training_and_loading_on_a_cpu_flush_subnormals_unless_told(tiny_config, ieee_subnormals, flush):
    """train.flush_denormals (default true) and load_model's flush_denormals: a trained model's backward pass makes
    subnormal floats, which x86 CPUs compute many times slower (benchmarks/denormals.py)."""
    from hqc_qiskit.checkpoint import load_model
    from tests.conftest import ROOT

    assert not _flushes_subnormals()
    trainer = Trainer(tiny_config(train__flush_denormals=flush, train__device="cpu", train__max_epochs=1), progress=False)
    assert _flushes_subnormals() is flush
    trainer.fit()   # its test evaluation loads the best model: that too as the setting says
    assert _flushes_subnormals() is flush
    torch.set_flush_denormal(False)
    load_model(ROOT / "runs" / "small_cmlp_long", flush_denormals=flush)
    assert _flushes_subnormals() is flush
