"""Benchmark metrics over per-problem outcomes: pass@k, avg@k, pass@1 and bootstrap intervals.

Where it sits: `recipe/evaluate.py` turns a job's Parquet results into, for each problem, how
many samples ran (n) and how many were correct (c); these pure functions turn those counts
into the figures papers report (docs/evaluation.md has the formulas), and `compare.py` uses
the same bootstrap for paired differences. No I/O and no gRPC here, so tests and notebooks
call them directly.

- pass@k, the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
  Trained on Code"): for one problem with n samples of which c are correct,
  1 - C(n-c, k) / C(n, k), the chance that k samples drawn without replacement from the n
  hold at least one correct one. Computed as a product, 1 - prod_{i=n-c+1}^{n} (1 - k/i),
  so large n never overflows a binomial coefficient.
- avg@k: each problem's mean correctness over its k samples, averaged over problems.
- pass@1: the greedy arm's accuracy (one sample per problem), or over K samples their mean,
  which is avg@K and also pass@k's estimator at k=1 (c/n).
- Intervals: a 95% percentile bootstrap of the mean over problems, resampling problems with
  replacement (B = 2000 resamples, seed 0, both recorded with every evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Resampled indexes drawn at once at most (resamples x problems), so a big set stays in memory.
_BOOTSTRAP_CHUNK = 4_000_000


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate for one problem with n samples, c of them correct."""
    if not 0 <= c <= n:
        raise ValueError(f"correct samples c={c} must be in [0, n={n}]")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, n={n}] (a problem with n samples estimates pass@k for k <= n)")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def pass_at_k_scores(samples: Sequence[int], correct: Sequence[int], k: int) -> np.ndarray:
    """Each problem's pass@k estimate (problem i: samples[i] samples, correct[i] of them right)."""
    return np.array([pass_at_k(int(n), int(c), k) for n, c in zip(samples, correct, strict=True)], dtype=np.float64)


def avg_at_k_scores(samples: Sequence[int], correct: Sequence[int]) -> np.ndarray:
    """Each problem's mean correctness over its samples (c / n)."""
    n = np.asarray(samples, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    if np.any(n < 1) or np.any(c < 0) or np.any(c > n):
        raise ValueError("every problem needs n >= 1 samples and 0 <= c <= n correct")
    return c / n


def pass_at_k_mean(samples: Sequence[int], correct: Sequence[int], k: int) -> float | None:
    """pass@k over problems: the mean of their estimates (None with no problem)."""
    scores = pass_at_k_scores(samples, correct, k)
    return float(scores.mean()) if len(scores) else None


def avg_at_k(outcomes: Sequence[Sequence[bool]]) -> float | None:
    """avg@k of per-problem sample outcomes (problem i: its samples' correctness)."""
    if not outcomes:
        return None
    return float(avg_at_k_scores([len(o) for o in outcomes], [sum(map(bool, o)) for o in outcomes]).mean())


def pass_at_1(outcomes: Sequence[Sequence[bool]]) -> float | None:
    """pass@1: accuracy with one (greedy) sample per problem; with K samples, their mean (avg@K)."""
    return avg_at_k(outcomes)


def bootstrap_interval(
    scores: Sequence[float] | np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean of per-problem `scores`: problems drawn
    with replacement `resamples` times (numpy's default generator seeded with `seed`, so the
    same scores give the same interval), the mean of each draw, and the (1-confidence)/2 and
    (1+confidence)/2 quantiles of those means. None with no score. Paired differences are
    bootstrapped by passing each problem's difference."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("scores must be one value per problem")
    if len(values) == 0:
        return None
    if resamples < 1:
        raise ValueError(f"resamples={resamples} must be >= 1")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CHUNK // len(values))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, len(values), size=(stop - start, len(values)))
        means[start:stop] = values[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))
