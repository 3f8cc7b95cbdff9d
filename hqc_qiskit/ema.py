"""EMA with a warm-up of its decay, as an ``avg_fn`` for torch's ``AveragedModel`` (torch only).

torch's ``get_ema_multi_avg_fn`` has a fixed decay, so an EMA evaluated early in training is mostly
the first step's weights (0.99^45 = 0.64 after 45 steps). torch_ema (used by MACE and NequIP, with
``use_num_updates``) lowers the decay to (1 + n) / (10 + n) after n updates; this is that rule in
the form AveragedModel takes, so checkpoints keep AveragedModel's format. Hand-written: five lines,
and adding torch_ema would mean a second EMA implementation and checkpoint format.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def warmup_ema_avg_fn(decay: float):
    """avg_fn(averaged, current, num_averaged): EMA with decay min(decay, (1 + n) / (10 + n)), n = updates so far."""

    def avg_fn(averaged, current, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        return torch.lerp(averaged, current, 1.0 - d)   # the update of torch's fixed-decay EMA, with d instead

    return avg_fn


def ema_model(model: torch.nn.Module, decay: float, warmup: bool = False) -> AveragedModel:
    """AveragedModel of ``model``: EMA with fixed ``decay`` (torch's own), or with the warm-up above.

    Parameters only: the model's buffers (integer index tables, reference energies) are constants and
    are copied at each update (``use_buffers=False``); averaging integer tables truncated them for some
    decays (0.9, the warm-up decays) and broke the averaged model's predictions."""
    average = {"avg_fn": warmup_ema_avg_fn(decay)} if warmup else {"multi_avg_fn": get_ema_multi_avg_fn(decay)}
    return AveragedModel(model, use_buffers=False, **average)
