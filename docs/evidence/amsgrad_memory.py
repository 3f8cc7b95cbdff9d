"""How much larger AMSGrad's running maximum of the second moments is than their current value, in a checkpoint.

    python docs/evidence/amsgrad_memory.py RUN_DIR/checkpoint.pt [...]

Prints, per checkpoint, the optimizer's step count and the 10/50/90% quantiles over the parameters of
max_exp_avg_sq / exp_avg_sq (elements with exp_avg_sq > 0; a random sample of at most 10^6). Adam divides each
step by the square root of the maximum, so a ratio of r means steps sqrt(r) times smaller than a fresh optimizer's
after its warm-up: what a restart from best_model.pt loses (docs/training.md, "Lost checkpoint").
"""

from __future__ import annotations

import sys

import torch

QUANTILES = (0.1, 0.5, 0.9)


def ratio_quantiles(path: str, sample: int = 1_000_000, seed: int = 0) -> tuple[int, list[float]]:
    """(optimizer steps, quantiles of max_exp_avg_sq / exp_avg_sq) of the checkpoint at ``path``."""
    state = torch.load(path, map_location="cpu", weights_only=False)["optimizer"]["state"]
    if not state or "max_exp_avg_sq" not in next(iter(state.values())):
        raise SystemExit(f"{path}: the optimizer state holds no max_exp_avg_sq (not trained with train.amsgrad: true)")
    peak = torch.cat([s["max_exp_avg_sq"].flatten() for s in state.values()]).double()
    now = torch.cat([s["exp_avg_sq"].flatten() for s in state.values()]).double()
    ratio = (peak / now)[now > 0]
    pick = torch.randperm(len(ratio), generator=torch.Generator().manual_seed(seed))[:sample]
    steps = int(next(iter(state.values()))["step"])
    return steps, torch.quantile(ratio[pick], torch.tensor(QUANTILES, dtype=torch.double)).tolist()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for path in sys.argv[1:]:
        steps, q = ratio_quantiles(path)
        print(f"{path}: {steps} steps; max_exp_avg_sq / exp_avg_sq at quantiles "
              + ", ".join(f"{int(p * 100)}%: {v:.3g}" for p, v in zip(QUANTILES, q)))
