"""The one training loop of the time-to-accuracy benchmark, shared by our models and MACE (torch only,
so the MACE venv imports it too). Same recipe for both: AMSGrad, EMA of the weights evaluated,
loss w_E * MSE(E) + w_F * MSE(F), seeded shuffled batches; only training time is counted
(validation pauses the clock).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the MACE venv has no hqc_qiskit installed
from hqc_qiskit.ema import ema_model  # noqa: E402  (torch only)


def train_timed(
    model: torch.nn.Module,
    loss_of: Callable[[torch.nn.Module, list[int]], torch.Tensor],
    evaluate: Callable[[torch.nn.Module], tuple[float, float]],
    n_train: int,
    batch_size: int = 20,
    lr: float = 0.01,
    ema_decay: float = 0.99,
    budget_s: float = 1800.0,
    eval_every_s: float = 60.0,
    threshold: float | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
    setup_s: float = 0.0,
    warmup_steps: int = 0,
    ema_warmup: bool = False,
) -> list[dict]:
    """Train until ``budget_s`` seconds of training time (or val F RMSE <= ``threshold``).

    ``loss_of(model, indices)`` -> scalar loss of a batch, or an iterable of the losses of its passes (each
    backpropagated before the next is computed; they add up to the batch's loss); ``evaluate(ema_model)`` -> (val E RMSE
    meV/atom, val F RMSE eV/Å). ``setup_s``: seconds already spent preparing the model (e.g. fitting an
    initial energy shift), counted as training time. ``warmup_steps``: learning rate rises linearly
    to ``lr`` over that many steps (Adam's first steps move every weight by ~lr and throw the energy off by
    eV/atom). ``ema_warmup``: EMA decay min(ema_decay, (1 + n) / (10 + n)) after n updates (NequIP's
    ``ema_use_num_updates``, from torch_ema), so the evaluated average follows the model early on.
    Returns the evaluations: step, epoch, train_seconds, val_e, val_f."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, amsgrad=True)
    sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0 / warmup_steps, 1.0, warmup_steps) if warmup_steps else None
    ema = ema_model(model, ema_decay, ema_warmup)
    history, train_s, since_eval, step, epoch = [], setup_s, setup_s, 0, 0
    while train_s < budget_s:
        order = torch.randperm(n_train, generator=gen).tolist()
        for start in range(0, n_train - batch_size + 1, batch_size):
            t = time.perf_counter()
            opt.zero_grad()
            losses = loss_of(model, order[start : start + batch_size])
            loss = 0.0
            for part in [losses] if isinstance(losses, torch.Tensor) else losses:   # one pass, or several
                part.backward()
                loss += float(part.detach())
            opt.step()
            if sched is not None:
                sched.step()
            ema.update_parameters(model)
            dt = time.perf_counter() - t
            train_s, since_eval, step = train_s + dt, since_eval + dt, step + 1
            if since_eval >= eval_every_s or train_s >= budget_s:
                since_eval = 0.0
                e, f = evaluate(ema.module)
                history.append({"step": step, "epoch": epoch + start / n_train, "train_seconds": train_s,
                                "val_rmse_e_mev_atom": e, "val_rmse_f_ev_a": f, "loss": loss})
                log(f"step {step:5d}  {train_s:7.0f} s  val E {e:8.2f} meV/atom  F {f:.4f} eV/Å")
                if (threshold is not None and f <= threshold) or train_s >= budget_s:
                    return history
        epoch += 1
    return history


def time_to(history: list[dict], threshold: float) -> dict:
    """First evaluation at or below ``threshold`` (val F RMSE): its training time and val E RMSE; NaN if never."""
    for h in history:
        if h["val_rmse_f_ev_a"] <= threshold:
            return {"seconds": h["train_seconds"], "val_rmse_e_mev_atom": h["val_rmse_e_mev_atom"], "step": h["step"]}
    return {"seconds": float("nan"), "val_rmse_e_mev_atom": float("nan"), "step": None}
