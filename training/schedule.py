"""The learning-rate schedule of the SFT recipe: linear warmup, then cosine decay (paper: 3% warmup).

Every optimizer step trains. The usual 0-indexed warmup (transformers'
`get_cosine_with_min_lr_schedule_with_warmup`) gives step 1 a rate of exactly zero, so a
run of a few steps spends its first one, often its only warm one, doing nothing. Here
the schedule is a curve over steps 0..N+1 that is zero at 0, reaches the peak at W and
the floor at N+1, and step k (1..N) trains with its value at k: the ramp is lr * k / W
(step W trains at the peak), the cosine runs from the peak at W towards the floor, and
neither zero lies inside the run. A one-step run trains at the peak.
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """Steps of the ramp: the ratio of the run, rounded up, so any non-zero ratio warms up."""
    return math.ceil(warmup_ratio * total_steps)


def lr_factor(step: int, warmup: int, total: int, min_lr_ratio: float) -> float:
    """The fraction of the peak rate that optimizer step `step` (1-based, 1..total) trains with."""
    if step <= warmup:
        return step / warmup
    progress = (step - warmup) / (total + 1 - warmup)  # < 1 inside the run: the last step trains too
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _factor_at_index(index: int, warmup: int, total: int, min_lr_ratio: float) -> float:
    # LambdaLR counts from 0 (the rate before the first `step()` call): index i is step i + 1.
    return lr_factor(index + 1, warmup, total, min_lr_ratio)


def warmup_cosine(optimizer: Optimizer, warmup_ratio: float, total_steps: int, min_lr_ratio: float) -> LambdaLR:
    """The scheduler DeepSpeed steps once per optimizer step; `get_last_lr()` before a step is its rate.

    A partial (not a lambda) so that DeepSpeed's checkpoints can save and restore it.
    """
    factor = partial(_factor_at_index, warmup=warmup_steps(warmup_ratio, total_steps), total=total_steps,
                     min_lr_ratio=min_lr_ratio)
    return LambdaLR(optimizer, factor)
