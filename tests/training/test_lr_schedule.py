"""The SFT learning-rate schedule: every step trains, the peak is reached, cosine decays as the paper says.

Read the way the trainer reads it: `get_last_lr()` before each optimizer step is that
step's rate, and the scheduler steps once per optimizer step (as DeepSpeed steps it).
"""

from __future__ import annotations

import math

import pytest
import torch

from training.config import TrainConfig
from training.schedule import warmup_cosine, warmup_steps


def rates(total: int, warmup_ratio: float = 0.03, min_lr_ratio: float = 0.0, lr: float = 1e-3) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    scheduler = warmup_cosine(optimizer, warmup_ratio, total, min_lr_ratio)
    out = []
    for _ in range(total):
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7])
def test_a_run_of_a_few_steps_trains_on_every_step_and_the_first_at_the_peak(total: int) -> None:
    lrs = rates(total)
    assert lrs[0] == pytest.approx(1e-3)  # ceil(3% of a few steps) = 1 warmup step: step 1 is the peak
    assert all(lr > 0 for lr in lrs)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))


def test_the_papers_recipe_warms_up_linearly_from_step_one_to_the_peak_then_decays_by_cosine() -> None:
    paper = TrainConfig(model="m", data=["d"])
    total = 1000
    warmup = warmup_steps(paper.warmup_ratio, total)
    assert warmup == 30
    lrs = rates(total, paper.warmup_ratio, paper.min_lr_ratio, paper.lr)
    peak = paper.lr
    # Ramp: step k trains at peak * k / warmup, from step 1 (not 0) to the peak at step `warmup`.
    assert lrs[0] == pytest.approx(peak / warmup) and lrs[0] > 0
    assert lrs[:warmup] == pytest.approx([peak * k / warmup for k in range(1, warmup + 1)])
    assert max(lrs) == pytest.approx(peak) and lrs.index(max(lrs)) == warmup - 1
    # Cosine from the peak to the floor (0), which it would reach one step after the last.
    decay = lrs[warmup:]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    middle = warmup + (total + 1 - warmup) // 2  # halfway through the decay
    assert lrs[middle - 1] == pytest.approx(peak / 2, rel=0.01)
    assert 0 < lrs[-1] < peak * 1e-4


def test_the_cosine_floor_is_a_fraction_of_the_peak() -> None:
    lrs = rates(200, warmup_ratio=0.1, min_lr_ratio=0.1)
    assert min(lrs[20:]) > 1e-4 and lrs[-1] == pytest.approx(1e-4, rel=1e-3)
    assert lrs[-1] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 180 / 181)))


def test_the_schedule_resumes_from_its_saved_state() -> None:
    """DeepSpeed checkpoints the scheduler's state_dict; a resumed run continues the curve."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    first = warmup_cosine(optimizer, 0.1, 50, 0.0)
    for _ in range(17):
        optimizer.step()
        first.step()
    resumed = warmup_cosine(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3), 0.1, 50, 0.0)
    resumed.load_state_dict(first.state_dict())
    resumed.optimizer.step()
    resumed.step()
    assert resumed.get_last_lr() == [pytest.approx(rates(50, 0.1)[18])]
