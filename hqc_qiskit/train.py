"""Trainer: loss MSE(E) + w_F MSE(F), AMSGrad, ReduceLROnPlateau, EMA, atomic checkpoints, resume, DDP.

Run directory: config.yaml (resolved), metrics.csv (one row per epoch), learning_curve.png,
checkpoint.pt (latest, for --resume), best_model.pt (EMA weights, best validation loss),
summary.json. Same config + seed gives the same numbers; a resumed run continues exactly.
``train.init_from`` starts from another run's weights (fine-tuning; noise-aware training with noisy readouts).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from ase.units import GPa

from .checkpoint import BEST, CHECKPOINT, atomic_save, atomic_write_json, initialise_from, model_payload, read_checkpoint
from .config import RunConfig, save_config
from .coverage import coverage_of, coverage_of_frames, merge
from .data import keys as K
from .data.dataset import load_labelled, load_structures, split_indices
from .data.graph import atoms_to_graph, collate, to_device
from .ema import ema_model
from .environment import hardware, package_versions
from .errors import ConfigError, EngineError
from .metrics import energy_force_metrics
from .model.potential import HQCPotential, build_model
from .progress import stderr_line
from .quantum.noisy_readout import build_noisy_readouts, check_trainable_noisy_readouts
from .torch_device import flush_denormals, resolve_device

#: after this many epochs, a training force RMSE still within 1% of the RMS of the training forces means
#: the model predicts almost no forces: a warning says so (see PlateauWarning)
PLATEAU_CHECK_EPOCH = 10


class PlateauWarning(UserWarning):
    """The model still predicts ~zero forces after PLATEAU_CHECK_EPOCH epochs."""


#: a validation loss above this multiple of the best so far is a divergence ("spike"); a warning says so
#: (l2_hqc_cz seed 0 went from 8.04 to 31.6 at epoch 56, docs/results.md; ordinary epoch-to-epoch noise late in
#: training is a few percent)
SPIKE_FACTOR = 2.0


class SpikeWarning(UserWarning):
    """The validation loss jumped to more than SPIKE_FACTOR times its best value: the training diverged."""


def is_spike(loss: float, best: float) -> bool:
    """The divergence rule of SpikeWarning: ``loss`` above SPIKE_FACTOR x the best loss so far."""
    return math.isfinite(best) and loss > SPIKE_FACTOR * best


METRIC_FIELDS = [
    "epoch", "lr", "train_loss", "train_rmse_e_mev_atom", "train_rmse_f_ev_a",
    "val_loss", "val_rmse_e_mev_atom", "val_rmse_e_offset_free_mev_atom", "val_rmse_f_ev_a",
    "epoch_seconds", "wall_seconds", "grad_norm_mean", "grad_norm_max",
]
# grad_norm_*: L2 norm over all parameters of each step's gradient before clipping, mean and max over the epoch
# (spikes in training show up here first). Runs started before these columns existed keep their header on --resume.
STRESS_FIELDS = ["train_rmse_stress_gpa", "val_rmse_stress_gpa"]   # added for runs with train.stress_weight > 0


@dataclass
class Splits:
    """Precomputed graphs (with labels) of the train, validation and test structures."""

    train: list
    val: list
    test: list


def _two_digits(x: float) -> str:
    """x rounded to two significant digits, for a suggested setting (347.2 -> '350')."""
    return f"{float(f'{x:.2g}'):g}"


def load_splits(config: RunConfig) -> tuple[list, list, list]:
    """Train/val/test ASE frames from the config (files or one file split with a seed)."""
    d, species = config.data, config.model.species
    kw = dict(energy_key=d.energy_key, forces_key=d.forces_key, species=species, stress_key=d.stress_key)
    if d.file is not None:
        frames = load_labelled(d.file, **kw)
        parts = split_indices(len(frames), list(d.split), d.split_seed)
        train, val, *rest = [[frames[i] for i in idx] for idx in parts]
        test = rest[0] if rest else []
    else:
        train = load_labelled(d.train, **kw)
        val = load_labelled(d.val, **kw) if d.val else []
        test = load_labelled(d.test, **kw) if d.test else []
    if d.max_train:
        train = train[: d.max_train]
    if d.max_val:
        val = val[: d.max_val]
    if not train:
        raise ConfigError("the training set is empty")
    return train, val, test


def training_structures(config: RunConfig) -> list:
    """The structures of the training split of ``config``, as :func:`load_splits` gives them (labels not read)."""
    d = config.data
    if d.file is not None:
        frames = load_structures(d.file)
        frames = [frames[i] for i in split_indices(len(frames), list(d.split), d.split_seed)[0]]
    else:
        frames = load_structures(d.train)
    return frames[: d.max_train] if d.max_train else frames


def fit_reference_energies(frames, species: list[str]) -> torch.Tensor:
    """Least-squares per-element energies (eV/atom) from composition -> total energy."""
    counts = np.array([[a.get_chemical_symbols().count(s) for s in species] for a in frames], dtype=float)
    energies = np.array([a.get_potential_energy() for a in frames])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return torch.tensor(solution)


#: structures used by fit_residual_reference_energies: enough for a per-element mean, cheap (forward only)
RESIDUAL_FIT_STRUCTURES = 40


def fit_residual_reference_energies(model: HQCPotential, graphs: list[dict], species: list[str], device, dtype,
                                    batch_size: int = 10) -> torch.Tensor:
    """Per-element energies (eV/atom) fitted to the labels minus the freshly initialised model's own energies.

    Least squares of (E_label - E_model without reference energies) vs composition on the first
    RESIDUAL_FIT_STRUCTURES training graphs. With these as reference energies training starts without
    the model's initial energy offset (eV per atom for deep random readouts), so the first steps are not
    spent removing it (what NequIP/MACE's per-atom shift does for the data mean; here it also absorbs
    the untrained model's mean). Project science, so hand-written: ~10 lines of least squares."""
    graphs = graphs[:RESIDUAL_FIT_STRUCTURES]
    saved = model.reference_energies.clone()
    model.reference_energies.zero_()
    try:
        p = predict(model, graphs, batch_size, device, dtype, forces=False)
    finally:
        model.reference_energies.copy_(saved)
    counts = np.stack([np.bincount(g[K.SPECIES].cpu().numpy(), minlength=len(species)) for g in graphs]).astype(float)
    solution, *_ = np.linalg.lstsq(counts, p["e_ref"] - p["e_pred"], rcond=None)
    return torch.tensor(solution)


def predict(model: HQCPotential, graphs: list[dict], batch_size: int, device, dtype, forces: bool = True,
            progress: Callable[[int, int], None] | None = None, stress: bool = False) -> dict:
    """Energies ``e_pred`` (B,) eV and forces ``f_pred`` (N, 3) eV/Å for a list of graphs, as numpy arrays,
    with ``n_atoms`` (B,), with ``stress`` also ``s_pred`` (B, 3, 3) eV/Å^3 (NaN without a cell), and, when
    every graph has labels, the references ``e_ref`` and ``f_ref``.
    ``progress(done, total)`` is called after each batch with the number of structures done."""
    e_pred, e_ref, n_atoms, f_pred, f_ref, s_pred = [], [], [], [], [], []
    labelled = all(K.ENERGY in g for g in graphs)
    for start in range(0, len(graphs), batch_size):
        batch = to_device(collate(graphs[start : start + batch_size]), device, dtype)
        with torch.set_grad_enabled(forces or stress):
            out = model(batch, compute_forces=forces, compute_stress=stress)
        e_pred.append(out["energy"].detach().cpu().double().numpy())
        n_atoms.append(batch[K.N_ATOMS].cpu().numpy())
        if labelled:
            e_ref.append(batch[K.ENERGY].cpu().double().numpy())
        if forces:
            f_pred.append(out["forces"].detach().cpu().double().numpy())
            if labelled:
                f_ref.append(batch[K.FORCES].cpu().double().numpy())
        if stress:
            s_pred.append(out["stress"].detach().cpu().double().numpy())
        if progress is not None:
            progress(min(start + batch_size, len(graphs)), len(graphs))
    result = {"e_pred": np.concatenate(e_pred), "n_atoms": np.concatenate(n_atoms)}
    if labelled:
        result["e_ref"] = np.concatenate(e_ref)
    if stress:
        result["s_pred"] = np.concatenate(s_pred)
    if forces:
        result["f_pred"] = np.concatenate(f_pred)
        if labelled:
            result["f_ref"] = np.concatenate(f_ref)
    return result


@dataclass(frozen=True)
class LossCounts:
    """How many terms each mean of the loss averages over in one optimizer batch: structures (energy), force
    components, stress components of the labelled structures. A batch trained in several passes
    (``train.micro_batch_size``) divides every pass's sums by the whole batch's counts, so the passes' losses and
    gradients add up to the whole batch's."""

    structures: int
    force_components: int
    stress_components: int

    @classmethod
    def of_graphs(cls, graphs: list[dict]) -> "LossCounts":
        """Counts of the structures ``graphs`` (atoms_to_graph dicts with labels)."""
        return cls(len(graphs), sum(g[K.FORCES].numel() for g in graphs if K.FORCES in g),
                   9 * sum(K.STRESS in g for g in graphs))

    @classmethod
    def of_batch(cls, batch: dict) -> "LossCounts":
        """Counts of one collated batch."""
        stress = int(batch[K.STRESS_MASK].sum()) * 9 if K.STRESS in batch else 0
        return cls(int(batch[K.N_STRUCTURES]), batch[K.FORCES].numel() if K.FORCES in batch else 0, stress)


def split_passes(graphs: list[dict], size: int | None) -> list[list[dict]]:
    """``graphs`` (one optimizer batch) in consecutive passes of ``size`` structures; None: one pass."""
    size = size or len(graphs)
    return [graphs[first : first + size] for first in range(0, len(graphs), size)]


def loss_fn(out: dict, batch: dict, energy_weight: float, forces_weight: float, stress_weight: float = 0.0,
            counts: LossCounts | None = None) -> torch.Tensor:
    """w_E * MSE(E per structure, eV^2) + w_F * MSE(F per component, (eV/Å)^2)
    + w_S * MSE(stress per component, (eV/Å^3)^2) over the structures of the batch that carry a stress label
    (none: no stress term). ``counts``: the means' denominators when ``batch`` is one pass of a larger optimizer
    batch (default: this batch's own counts, i.e. plain means)."""
    counts = counts if counts is not None else LossCounts.of_batch(batch)
    loss = energy_weight * ((out["energy"] - batch[K.ENERGY]) ** 2).sum() / counts.structures
    if forces_weight:
        loss = loss + forces_weight * ((out["forces"] - batch[K.FORCES]) ** 2).sum() / counts.force_components
    if stress_weight and K.STRESS in batch:   # collate adds STRESS only when a structure carries a label
        sq, _ = stress_squared_error(out["stress"], batch)
        loss = loss + stress_weight * sq / counts.stress_components
    return loss


def stress_squared_error(stress: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of squared stress errors over the labelled structures' components, how many components): ``stress``
    (B, 3, 3) eV/Å^3 against the batch's labels where its mask says there is one."""
    mask = batch[K.STRESS_MASK].to(stress.device)
    diff = (stress - batch[K.STRESS])[mask]
    return (diff**2).sum(), mask.sum() * 9


class _Distributed:
    """rank/world size from torchrun's environment; gloo on CPU, nccl on CUDA."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world > 1
        self.owns_group = self.enabled and not dist.is_initialized()
        if self.owns_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def shard(self, indices: list[int]) -> list[int]:
        return indices[self.rank :: self.world] if self.enabled else indices

    def all_sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        """Destroy the process group this object opened; call once no DDP wrapper is referenced any more."""
        if self.owns_group:
            destroy_process_group_after_ddp()
            self.owns_group = False


def destroy_process_group_after_ddp() -> None:
    """Destroy the default process group after the caller dropped its DistributedDataParallel wrappers.

    Order matters (torch 2.13, gloo): the DDP reducer holds a reference to the process group. If the
    reducer is freed last, the group's destructor joins gloo's worker thread while holding the GIL,
    and that thread may need the GIL to free a finished allreduce: the process hangs at exit (seen in
    CI; py-spy stack in docs/training.md). So collect the dropped wrappers (DDP has reference
    cycles) while the default group still owns the process group, then destroy the group through
    torch.distributed, whose binding releases the GIL before joining.
    """
    gc.collect()
    dist.destroy_process_group()


def refuse_finished_run(run_dir: Path) -> None:
    """Raise ConfigError if ``run_dir`` holds a checkpoint or best model (what a fresh start would overwrite)."""
    found = [name for name in (CHECKPOINT, BEST) if (run_dir / name).exists()]
    if found:
        raise ConfigError(
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with --resume, start it over with "
            "--overwrite, or write elsewhere with -o output_dir=DIR")


class Trainer:
    """Train ``config``; ``resume=True`` continues from ``<run_dir>/checkpoint.pt`` exactly.

    A fresh run (``resume=False``) refuses a run directory that already holds a checkpoint or a best
    model, so that a forgotten ``--resume`` does not overwrite hours of training; ``overwrite=True``
    starts over there anyway. ``restart_from_best=True`` continues a run whose checkpoint.pt is lost from its
    best_model.pt (:meth:`_restart_from_best`: not exact, and recorded as a restart).
    """

    def __init__(self, config: RunConfig, resume: bool = False, progress: bool = True, splits: tuple | None = None,
                 overwrite: bool = False, restart_from_best: bool = False):
        self.config = config
        self.run_dir = Path(config.run_dir())
        if sum((resume, overwrite, restart_from_best)) > 1:
            raise ConfigError("resume, overwrite and restart-from-best exclude each other: continue the run exactly, "
                              "start it over, or continue it from its best model")
        if not (resume or overwrite or restart_from_best):
            refuse_finished_run(self.run_dir)
        continuing = resume or restart_from_best
        self.device = resolve_device(config.train.device)
        self.dtype = torch.float64 if config.model.dtype == "float64" else torch.float32
        self.dist = _Distributed(self.device)
        self.progress = progress and self.dist.is_main
        self.flushes_denormals = config.train.flush_denormals and self.device.type == "cpu"
        if self.flushes_denormals:
            flush_denormals()   # before torch starts its intra-op threads, so that they inherit it
        if config.train.num_threads:
            torch.set_num_threads(config.train.num_threads)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)

        train, val, test = splits if splits is not None else load_splits(config)
        cutoff, species = config.model.cutoff, config.model.species
        self.graphs = Splits(*[[atoms_to_graph(a, cutoff, species, with_labels=True) for a in part] for part in (train, val, test)])
        # what the model learns from (a fine-tune also from its source's data): stored with every checkpoint
        self.coverage = merge(coverage_of_frames(train),
                              coverage_of(config.train.init_from) if config.train.init_from is not None else None)
        forces = [g[K.FORCES].reshape(-1) for g in self.graphs.train if K.FORCES in g]
        self.train_force_rms = float(torch.cat(forces).pow(2).mean().sqrt()) if forces else math.nan  # eV/Å
        self.warnings: list[str] = []

        self.model = build_model(config.model)
        check_trainable_noisy_readouts(self.model, log=stderr_line if self.dist.is_main else None)
        if config.train.init_from is not None and not continuing:
            # fine-tuning: the source's weights and reference energies; noisy readouts simulate their coefficients
            initialise_from(self.model, config.train.init_from)
            build_noisy_readouts(self.model, progress=self.progress, log=stderr_line if self.dist.is_main else None)
        self.model = self.model.to(self.device)
        fresh = config.train.init_from is None   # a fine-tuned model keeps its source's reference energies
        if fresh and config.model.reference_energies == "fit":
            self.model.reference_energies.copy_(fit_reference_energies(train, species))
        elif fresh and config.model.reference_energies == "fit_residual" and not continuing:
            self.model.reference_energies.copy_(
                fit_residual_reference_energies(self.model, self.graphs.train, species, self.device, self.dtype))
        if config.train.stress_weight:
            self._check_stress_labels(config, train, val)
        if (config.train.forces_weight or config.train.stress_weight) and not self.model.supports_double_backward:
            raise EngineError(
                f"readout engine '{config.model.readout.engine}' cannot give the second derivatives that "
                "force training needs; use 'model.readout.engine: exact' (numerically identical), or set "
                "'train.forces_weight: 0' to train on energies only"
            )
        self.ddp_model = (
            torch.nn.parallel.DistributedDataParallel(self.model) if self.dist.enabled else self.model
        )
        t = config.train
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=t.lr, amsgrad=t.amsgrad, weight_decay=t.weight_decay,
            decoupled_weight_decay=t.decoupled_weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=t.scheduler.factor, patience=t.scheduler.patience
        )
        if t.early_stopping_patience is not None and t.early_stopping_patience <= t.scheduler.patience and self.dist.is_main:
            # the scheduler lowers the rate after patience + 1 epochs without a better loss, early stopping stops after
            # early_stopping_patience: a run that stops here has plateaued at its first learning rate, not converged
            stderr_line(f"warning: train.early_stopping_patience ({t.early_stopping_patience}) is not above "
                        f"train.scheduler.patience ({t.scheduler.patience}): a plateau stops the run before it lowers "
                        "the learning rate even once")
        # linear warm-up per step; after warmup_steps LinearLR leaves the (plateau-reduced) lr alone
        self.warmup = (torch.optim.lr_scheduler.LinearLR(self.optimizer, 1.0 / t.warmup_steps, 1.0, t.warmup_steps)
                       if t.warmup_steps else None)
        self.ema = ema_model(self.model, t.ema_decay, t.ema_warmup) if t.ema_decay else None   # parameters only
        self.epoch = 0
        self.best_val = math.inf
        self.epochs_since_best = 0
        self._spiking = False   # inside a divergence episode (SpikeWarning said so once)
        self.wall_offset = 0.0
        self.restarts: list[dict] = []   # continuations from best_model.pt (_restart_from_best), kept in checkpoints
        if resume:
            self._load_checkpoint()
        elif restart_from_best:
            self._restart_from_best()
        elif self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in (CHECKPOINT, BEST, "summary.json"):   # an overwritten run's state must not mix with this one's
                (self.run_dir / stale).unlink(missing_ok=True)
            save_config(config, self.run_dir / "config.yaml")
            with open(self.run_dir / "metrics.csv", "w", newline="") as fh:
                csv.writer(fh).writerow(self._new_metric_fields())
        self.metric_fields = self._metrics_header()

    # ------------------------------------------------------------------ state
    def _state(self) -> dict:
        state = {
            **model_payload(self.model, self.coverage),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "warmup": self.warmup.state_dict() if self.warmup is not None else None,
            "epoch": self.epoch,
            "best_val": self.best_val,
            "epochs_since_best": self.epochs_since_best,
            "wall_seconds": self.wall_offset,
            "torch_rng": torch.get_rng_state(),
            "run_config": self.config.model_dump(mode="json"),
            "restarts": self.restarts,
        }
        if self.ema is not None:
            state["ema_averaged"] = self.ema.state_dict()
        return state

    def _load_checkpoint(self) -> None:
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            raise ConfigError(f"{path}: nothing to resume (no checkpoint in the run directory)")
        state = read_checkpoint(path, self.device)
        self._load_weights(path, state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.warmup is not None and state.get("warmup") is not None:
            self.warmup.load_state_dict(state["warmup"])
        if self.ema is not None and "ema_averaged" in state:
            self.ema.load_state_dict(state["ema_averaged"])
        self.epoch, self.best_val = state["epoch"], state["best_val"]
        self.epochs_since_best, self.wall_offset = state["epochs_since_best"], state["wall_seconds"]
        torch.set_rng_state(state["torch_rng"])
        self.restarts = list(state.get("restarts", []))
        if self.dist.is_main:
            self._truncate_metrics(self.epoch)

    def _load_weights(self, path: Path, state: dict) -> None:
        """The model weights of checkpoint ``path`` (its payload ``state``); ConfigError naming the file and the
        first difference when another architecture wrote it."""
        try:
            self.model.load_state_dict(state["model_state"])
        except (KeyError, RuntimeError) as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            raise ConfigError(f"{path}: written by another model than this config builds; resume with the run's own "
                              f"config ({self.run_dir / 'config.yaml'}); first difference: {lines[min(1, len(lines) - 1)][:300]}") from None

    def _restart_from_best(self) -> None:
        """Continue a run whose checkpoint.pt is lost (say, left out of a copy) from its best_model.pt.

        Kept: the best model's (EMA) weights, as both the trained and the averaged weights; its epoch and
        validation loss; the EMA's update count (so its decay stays where it was); the learning rate and wall
        time of that epoch's row in metrics.csv, whose later rows are dropped (their state is gone). Lost: the
        optimizer's moments, which start afresh behind a new warm-up of train.warmup_steps, and the scheduler's
        count of epochs without a better loss (0 from here). So this is not the exact continuation ``resume``
        gives: it is recorded in ``restarts`` (checkpoints, summary.json) with the epoch it restarted at."""
        best, checkpoint = self.run_dir / BEST, self.run_dir / CHECKPOINT
        if checkpoint.exists():
            raise ConfigError(f"{checkpoint} exists: continue the run exactly with --resume instead")
        if not best.exists():
            raise ConfigError(f"{best}: no best model to restart from (nothing was trained in {self.run_dir})")
        state = read_checkpoint(best, self.device)
        if "epoch" not in state or "val_loss" not in state:
            raise ConfigError(f"{best}: holds no epoch / val_loss (not a best model the trainer wrote)")
        self._load_weights(best, state)
        epoch = int(state["epoch"])
        row = self._metrics_row(epoch)
        self.epoch, self.best_val, self.epochs_since_best = epoch, float(state["val_loss"]), 0
        self.wall_offset, lr = float(row["wall_seconds"]), float(row["lr"])
        t = self.config.train
        for group in self.optimizer.param_groups:   # schedulers built on this optimizer start from this rate
            group["lr"] = group["initial_lr"] = lr
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=t.scheduler.factor, patience=t.scheduler.patience)
        self.scheduler.best = self.best_val
        self.warmup = (torch.optim.lr_scheduler.LinearLR(self.optimizer, 1.0 / t.warmup_steps, 1.0, t.warmup_steps)
                       if t.warmup_steps else None)
        if self.ema is not None:
            self.ema.module.load_state_dict(self.model.state_dict())
            steps_per_epoch = math.ceil(len(self.graphs.train) / t.batch_size)
            self.ema.n_averaged.fill_(epoch * steps_per_epoch)
        self.restarts = [*self.restarts, {"epoch": epoch, "from": BEST, "lr": lr,
                                          "lost": "optimizer moments, scheduler's epochs without a better loss"}]
        if self.dist.is_main:
            self._truncate_metrics(epoch)
            stderr_line(f"restarting {self.run_dir} at epoch {epoch} from {BEST} (lr {lr:g}): no {CHECKPOINT}, so the "
                        "optimizer's moments start afresh after a new warm-up; recorded in summary.json 'restarts'")
            if t.amsgrad:
                # measured (docs/training.md, "Lost checkpoint"): a long run's running maximum of the second moments
                # is several times their current value, so a fresh one takes larger steps than the lost run did
                stderr_line("warning: AMSGrad's running maximum of the second moments is lost too, so the steps are "
                            "larger than the run's were; watch for a spike in the first epochs (docs/training.md)")

    def _metrics_row(self, epoch: int) -> dict:
        """Row ``epoch`` of this run's metrics.csv (dict of strings); ConfigError naming the file when absent."""
        path = self.run_dir / "metrics.csv"
        rows = []
        if path.exists():
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        found = [r for r in rows if r.get("epoch") and int(r["epoch"]) == epoch]
        if not found or not found[-1].get("lr") or not found[-1].get("wall_seconds"):
            raise ConfigError(f"{path}: no row with lr and wall_seconds for epoch {epoch}, the epoch of {BEST}")
        return found[-1]

    def _metrics_header(self) -> list[str]:
        """The columns of this run's metrics.csv: its own header when resuming a run with an older one."""
        path = self.run_dir / "metrics.csv"
        if self.dist.is_main and path.exists():
            with open(path) as fh:
                header = next(csv.reader(fh), None)
            if header:
                return header
        return self._new_metric_fields()

    def _new_metric_fields(self) -> list[str]:
        return list(METRIC_FIELDS) + (STRESS_FIELDS if self.config.train.stress_weight else [])

    def _check_stress_labels(self, config: RunConfig, train: list, val: list) -> None:
        """train.stress_weight > 0 needs a stress label on at least one training frame; the stress term averages
        over the frames that carry one (a dataset may label only some), which a log line counts."""
        d = config.data
        counts = {name: sum("stress" in a.calc.results for a in frames)
                  for name, frames in (("training", train), ("validation", val))}
        if counts["training"] == 0:
            raise ConfigError(f"train.stress_weight is {config.train.stress_weight} but none of the {len(train)} "
                              f"training frames ({d.file or d.train}) has a stress label '{d.stress_key}'; label some "
                              "or set train.stress_weight: 0")
        if self.dist.is_main and (counts["training"] < len(train) or counts["validation"] < len(val)):
            stderr_line(f"stress labels on {counts['training']} of {len(train)} training and {counts['validation']} "
                        f"of {len(val)} validation frames: the stress term and its RMSE are over those only"
                        + ("" if counts["validation"] else " (no validation stress RMSE)"))
        if self.dist.is_main and val and not counts["validation"]:
            # the stress fit then cannot show in the validation loss, which picks best_model.pt; fitting a stress
            # that the energies and forces at one density do not determine can make that loss rise from the first
            # epoch, so best_model.pt would be the model before it learned the stress (docs/training.md)
            stderr_line("warning: no validation frame has a stress label, so best_model.pt is picked on energies and "
                        "forces alone and may not have learned the stress: add stress-labelled validation frames "
                        "(hqc-qiskit data merge) or use the last checkpoint (--which last)")

    def _truncate_metrics(self, last_epoch: int) -> None:
        """Drop metric rows written after the checkpoint (a run killed mid-epoch repeats that epoch)."""
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return
        with open(path) as fh:
            rows = list(csv.reader(fh))
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_epoch]
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(keep)
        tmp.replace(path)

    # ------------------------------------------------------------------ loop
    def eval_model(self) -> HQCPotential:
        return self.ema.module if self.ema is not None else self.model

    def _epoch_order(self) -> list[int]:
        # a generator seeded by (seed, epoch): resuming at any epoch gives the same order
        gen = torch.Generator().manual_seed(self.config.seed * 100003 + self.epoch)
        return torch.randperm(len(self.graphs.train), generator=gen).tolist()

    def train_epoch(self, progress=None, task=None) -> dict:
        t = self.config.train
        self.model.train()
        order = self._epoch_order()
        sums = [0.0] * 7  # loss*B, sq err E/atom, sq err F, n structures, n force components, sq err stress, n stress
        grad_norms = []
        for start in range(0, len(order), t.batch_size):
            idx = self.dist.shard(order[start : start + t.batch_size])
            graphs = [self.graphs.train[i] for i in idx]
            counts = LossCounts.of_graphs(graphs)
            passes = split_passes(graphs, t.micro_batch_size)
            self.optimizer.zero_grad(set_to_none=True)
            batch_loss = 0.0
            for k, part in enumerate(passes):
                batch = to_device(collate(part), self.device, self.dtype)
                # DDP all-reduces the gradients once per optimizer step, after the last pass
                sync = k == len(passes) - 1 or not self.dist.enabled
                with contextlib.nullcontext() if sync else self.ddp_model.no_sync():
                    out = self.ddp_model(batch, compute_forces=t.forces_weight > 0, compute_stress=t.stress_weight > 0,
                                         create_graph=t.forces_weight > 0 or t.stress_weight > 0)
                    loss = loss_fn(out, batch, t.energy_weight, t.forces_weight, t.stress_weight, counts)
                    loss.backward()
                batch_loss += loss.item()
                self._add_pass_errors(sums, out, batch)
            if t.grad_clip_norm is not None:   # returns the norm before clipping
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip_norm)
            else:
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
            grad_norms.append(grad_norm.item())
            self.optimizer.step()
            if self.warmup is not None:
                self.warmup.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            sums[0] += batch_loss * len(graphs)
            if progress is not None:
                progress.advance(task, len(idx) * self.dist.world)
        sums = self.dist.all_sum(sums)
        stress = {"train_rmse_stress_gpa": math.sqrt(sums[5] / sums[6]) / GPa} if sums[6] else {}
        return stress | {
            "train_loss": sums[0] / sums[3],
            "train_rmse_e_mev_atom": math.sqrt(sums[1] / sums[3]) * 1000,
            "train_rmse_f_ev_a": math.sqrt(sums[2] / sums[4]) if sums[4] else float("nan"),
            "grad_norm_mean": float(np.mean(grad_norms)) if grad_norms else float("nan"),
            "grad_norm_max": float(np.max(grad_norms)) if grad_norms else float("nan"),
        }

    @staticmethod
    @torch.no_grad()
    def _add_pass_errors(sums: list[float], out: dict, batch: dict) -> None:
        """Add one pass's squared errors and counts to train_epoch's running sums (all but the loss, sums[0])."""
        sums[1] += (((out["energy"] - batch[K.ENERGY]) / batch[K.N_ATOMS]) ** 2).sum().item()
        sums[3] += batch[K.N_STRUCTURES]
        if "forces" in out:
            sums[2] += ((out["forces"] - batch[K.FORCES]) ** 2).sum().item()
            sums[4] += batch[K.FORCES].numel()
        if "stress" in out and K.STRESS in batch:
            sq, count = stress_squared_error(out["stress"], batch)
            sums[5] += sq.item()
            sums[6] += count.item()

    def validate(self) -> dict:
        t = self.config.train
        if not self.graphs.val:
            return {}
        model = self.eval_model()
        model.eval()
        pred = predict(model, self.graphs.val, t.pass_size, self.device, self.dtype, forces=True,
                       stress=t.stress_weight > 0 and bool(self._val_stress_labels[0].any()))
        m = energy_force_metrics(pred["e_pred"], pred["e_ref"], pred["n_atoms"], pred["f_pred"], pred["f_ref"])
        e_mse = np.mean((pred["e_pred"] - pred["e_ref"]) ** 2)
        f_mse = np.mean((pred["f_pred"] - pred["f_ref"]) ** 2)
        loss = t.energy_weight * e_mse + t.forces_weight * f_mse
        row = {}
        if t.stress_weight:
            labelled, s_ref = self._val_stress_labels
            if len(s_ref):
                s_mse = np.mean((pred["s_pred"][labelled] - s_ref) ** 2)
                loss += t.stress_weight * s_mse
                row["val_rmse_stress_gpa"] = float(np.sqrt(s_mse) / GPa)
        return row | {"val_loss": float(loss), "val_rmse_e_mev_atom": m["rmse_e_mev_atom"],
                      "val_rmse_e_offset_free_mev_atom": m["rmse_e_offset_free_mev_atom"], "val_rmse_f_ev_a": m["rmse_f_ev_a"]}

    @functools.cached_property
    def _val_stress_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(which validation structures carry a stress label (n_val,) bool, their labels (n_labelled, 3, 3)
        eV/Å^3), gathered once."""
        labelled = np.array([K.STRESS in g for g in self.graphs.val], dtype=bool)
        labels = [g[K.STRESS] for g in self.graphs.val if K.STRESS in g]
        return labelled, (torch.cat(labels).double().numpy() if labels else np.zeros((0, 3, 3)))

    def fit(self) -> dict:
        """Train until max_epochs, early stopping or max_minutes; returns the summary dict."""
        if self.ddp_released:
            raise RuntimeError("this Trainer released its process group at the end of fit(); build a new Trainer "
                               "(with resume=True to continue from its checkpoint)")
        t = self.config.train
        start_wall = time.time() - self.wall_offset
        session_start = last_plot = time.time()
        stop_reason = "max_epochs"
        progress = None
        if self.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            progress.start()
            epochs_task = progress.add_task("epochs", total=t.max_epochs, completed=self.epoch, info="")
            batch_task = progress.add_task("batch", total=len(self.graphs.train), info="")
        try:
            while self.epoch < t.max_epochs:
                epoch_start = time.time()
                if progress is not None:
                    progress.reset(batch_task, total=len(self.graphs.train))
                row = self.train_epoch(progress, batch_task if progress else None)
                self.epoch += 1
                val = self.validate() if (self.epoch % t.eval_every == 0 or self.epoch == t.max_epochs) else {}
                row.update(val)
                monitor = val.get("val_loss", row["train_loss"]) if val or not self.graphs.val else None
                if monitor is not None:
                    self._check_spike(monitor, row)
                    self.scheduler.step(monitor)
                    if monitor < self.best_val:
                        self.best_val, self.epochs_since_best = monitor, 0
                        if self.dist.is_main:
                            atomic_save({**model_payload(self.eval_model(), self.coverage), "epoch": self.epoch, "val_loss": monitor}, self.run_dir / BEST)
                    else:
                        self.epochs_since_best += t.eval_every
                self.wall_offset = time.time() - start_wall
                row.update(epoch=self.epoch, lr=self.optimizer.param_groups[0]["lr"],
                           epoch_seconds=time.time() - epoch_start, wall_seconds=self.wall_offset)
                if self.dist.is_main:
                    with open(self.run_dir / "metrics.csv", "a", newline="") as fh:
                        csv.writer(fh).writerow([row.get(k, "") for k in self.metric_fields])
                    atomic_save(self._state(), self.run_dir / CHECKPOINT)
                    if t.plot_every_minutes is not None and time.time() - last_plot >= 60 * t.plot_every_minutes:
                        self.redraw_learning_curve()
                        last_plot = time.time()
                if progress is not None:
                    progress.update(epochs_task, completed=self.epoch,
                                    info=f"val E {row.get('val_rmse_e_mev_atom', float('nan')):.2f} meV/atom  F {row.get('val_rmse_f_ev_a', float('nan')):.3f} eV/Å")
                self._check_plateau(row)
                if t.early_stopping_patience is not None and self.epochs_since_best >= t.early_stopping_patience:
                    stop_reason = "early_stopping"
                    break
                if t.max_minutes is not None and (time.time() - session_start) / 60 >= t.max_minutes:
                    stop_reason = "max_minutes"
                    break
        finally:
            if progress is not None:
                progress.stop()
            self._release_ddp()
        summary = {"stop_reason": stop_reason, "epochs": self.epoch, "best_val_loss": self.best_val,
                   "train_seconds": self.wall_offset, "device": str(self.device),
                   "n_parameters": sum(p.numel() for p in self.model.parameters()),
                   "hardware": hardware(str(self.device)), "versions": package_versions(),
                   "training_coverage": self.coverage}
        if self.warnings:
            summary["warnings"] = self.warnings
        if self.restarts:
            summary["restarts"] = self.restarts
        if self.dist.is_main:
            self.finish(summary)
        return summary

    def _release_ddp(self) -> None:
        """Drop the DDP wrapper, then destroy the process group if this trainer opened it (see
        destroy_process_group_after_ddp); the epochs after this need a new Trainer."""
        if self.dist.enabled:
            self.ddp_model = self.model
            self.dist.close()

    @property
    def ddp_released(self) -> bool:
        """True once fit() has dropped the DDP wrapper of a distributed run."""
        return self.dist.enabled and self.ddp_model is self.model

    def _check_plateau(self, row: dict) -> None:
        """Warn once when, at PLATEAU_CHECK_EPOCH, the training force RMSE is still the forces' own RMS."""
        rmse_f = row.get("train_rmse_f_ev_a", float("nan"))
        if self.epoch != PLATEAU_CHECK_EPOCH or not self.config.train.forces_weight or math.isnan(self.train_force_rms):
            return
        if rmse_f > 0.99 * self.train_force_rms:
            message = (
                f"after {self.epoch} epochs the training force RMSE ({rmse_f:.3f} eV/Å) is still the RMS of the "
                f"training forces ({self.train_force_rms:.3f} eV/Å): the model predicts almost no forces. "
                + ("With coupled L2 (train.weight_decay > 0, train.decoupled_weight_decay: false) some models never "
                   "leave this plateau; consider -o train.decoupled_weight_decay=true (docs/training.md)."
                   if self.config.train.weight_decay and not self.config.train.decoupled_weight_decay else
                   "Some models leave it later; check the learning rate and docs/training.md.")
            )
            self.warnings.append(message)
            if self.dist.is_main:
                warnings.warn(message, PlateauWarning, stacklevel=2)

    def _check_spike(self, monitor: float, row: dict) -> None:
        """Warn when the monitored loss (validation, else training) jumps above SPIKE_FACTOR x its best so far,
        once per such episode, with the largest step's gradient norm and an outlier clip value read from the
        per-epoch maxima in metrics.csv (docs/training.md, "Gradient clipping")."""
        spiking = is_spike(monitor, self.best_val)
        if not spiking or self._spiking:
            self._spiking = spiking
            return
        self._spiking = True
        clip = self.config.train.grad_clip_norm
        message = (f"epoch {self.epoch}: the monitored loss {monitor:.4g} is "
                   f"{monitor / self.best_val:.1f}x its best so far ({self.best_val:.4g}); the training diverged "
                   f"(best_model.pt keeps the best weights).")
        peak = row.get("grad_norm_max", float("nan"))
        typical = self._typical_grad_norm_max()
        if math.isfinite(peak) and math.isfinite(typical):
            message += (f" Largest gradient norm of this epoch's steps: {peak:.4g}; median of the earlier epochs' "
                        f"largest: {typical:.4g}.")
        if clip is None:
            message += (" If it does not recover, or recurs, restart with an outlier clip near the typical largest "
                        f"norm, e.g. -o train.grad_clip_norm={_two_digits(typical) if math.isfinite(typical) else 'X'}"
                        " (docs/training.md).")
        else:
            message += f" Gradients are clipped at {clip:g}; a lower train.lr or clip may be needed (docs/training.md)."
        self.warnings.append(message)
        if self.dist.is_main:
            warnings.warn(message, SpikeWarning, stacklevel=2)

    def _typical_grad_norm_max(self) -> float:
        """Median of grad_norm_max over the epochs already in metrics.csv (nan where not recorded)."""
        from .plots import _read_csv   # the column reader of the learning-curve plot (empty cells -> nan)

        try:
            peaks = _read_csv(self.run_dir / "metrics.csv").get("grad_norm_max", np.array([]))
        except (OSError, ValueError):
            return float("nan")
        peaks = peaks[np.isfinite(peaks)]
        return float(np.median(peaks)) if len(peaks) else float("nan")

    def finish(self, summary: dict) -> None:
        """Test metrics of the best model, learning-curve plot, summary.json."""
        from .checkpoint import load_model

        if self.graphs.test and (self.run_dir / BEST).exists():
            t = self.config.train
            # the test model flushes subnormals only as the run does (load_model's default would always)
            model = load_model(self.run_dir / BEST, flush_denormals=self.flushes_denormals).to(self.device)
            pred = predict(model, self.graphs.test, t.pass_size, self.device, self.dtype)
            summary["test"] = energy_force_metrics(pred["e_pred"], pred["e_ref"], pred["n_atoms"], pred["f_pred"], pred["f_ref"])
        self.redraw_learning_curve()
        atomic_write_json(summary, self.run_dir / "summary.json")

    def redraw_learning_curve(self) -> None:
        """learning_curve.png from metrics.csv, replaced atomically (a viewer never sees half a file)."""
        from .plots import plot_learning_curve

        tmp = self.run_dir / "learning_curve.tmp.png"
        plot_learning_curve(self.run_dir / "metrics.csv", tmp)
        if tmp.exists():
            tmp.replace(self.run_dir / "learning_curve.png")


def train(config: RunConfig, resume: bool = False, progress: bool = True, overwrite: bool = False) -> dict:
    return Trainer(config, resume=resume, progress=progress, overwrite=overwrite).fit()
