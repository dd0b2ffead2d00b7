"""The benchmark metrics: pass@k by the unbiased estimator (checked against enumerating every
k-subset), avg@k, pass@1 for greedy and sampled arms, and the seeded bootstrap interval."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe import metrics


@st.composite
def n_c(draw: st.DrawFn, max_n: int = 40) -> tuple[int, int]:
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n))


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """The share of the k-subsets of n samples (c correct) that hold a correct one."""
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in subset) for subset in subsets) / len(subsets)


@settings(max_examples=200, deadline=None)
@given(n_c(max_n=10), st.data())
def test_pass_at_k_matches_enumerating_every_k_subset(nc: tuple[int, int], data: st.DataObject) -> None:
    n, c = nc
    k = data.draw(st.integers(1, n))
    assert metrics.pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(n_c())
def test_pass_at_k_never_falls_as_k_grows(nc: tuple[int, int]) -> None:
    n, c = nc
    values = [metrics.pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))
    assert all(0.0 <= v <= 1.0 for v in values)


@given(st.integers(1, 200), st.data())
def test_pass_at_k_is_one_when_every_sample_is_correct(n: int, data: st.DataObject) -> None:
    assert metrics.pass_at_k(n, n, data.draw(st.integers(1, n))) == 1.0


@given(n_c(max_n=500))
def test_pass_at_1_is_the_share_correct(nc: tuple[int, int]) -> None:
    n, c = nc
    assert metrics.pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


@given(st.integers(1, 200))
def test_pass_at_k_is_zero_when_no_sample_is_correct(n: int) -> None:
    assert metrics.pass_at_k(n, 0, n) == 0.0


def test_pass_at_k_exact_values() -> None:
    # 1 - C(n-c, k) / C(n, k), by hand.
    assert metrics.pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # 0.5
    assert metrics.pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert metrics.pass_at_k(16, 4, 8) == pytest.approx(1 - math.comb(12, 8) / math.comb(16, 8))
    assert metrics.pass_at_k(10, 3, 8) == 1.0  # n - c = 7 < k: every 8 of 10 hold a correct one
    assert metrics.pass_at_k(5, 2, 3) == pytest.approx(0.9)  # 1 - C(3,3)/C(5,3) = 1 - 1/10


def test_pass_at_k_is_stable_where_binomials_overflow_floats() -> None:
    # C(2000, 1000) is ~1e600, beyond a float; the product form has no trouble.
    value = metrics.pass_at_k(2000, 1, 1000)
    assert value == pytest.approx(0.5)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        metrics.pass_at_k(n, c, k)


def test_avg_at_k_averages_each_problems_mean_correctness() -> None:
    outcomes = [[True, False, False, False], [True, True, True, True], [False, False, False, False]]
    assert metrics.avg_at_k(outcomes) == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert metrics.avg_at_k([]) is None


def test_pass_at_1_is_greedy_accuracy_and_the_sample_mean_over_k() -> None:
    greedy = [[True], [False], [True], [True]]
    assert metrics.pass_at_1(greedy) == 0.75
    sampled = [[True, False], [False, False], [True, True]]
    assert metrics.pass_at_1(sampled) == pytest.approx(0.5)
    assert metrics.pass_at_1(sampled) == metrics.avg_at_k(sampled)
    # The estimator at k=1 averaged over problems is the same number.
    assert metrics.pass_at_k_mean([2, 2, 2], [1, 0, 2], 1) == pytest.approx(0.5)


def test_pass_at_k_mean_over_problems() -> None:
    assert metrics.pass_at_k_mean([4, 4], [1, 0], 2) == pytest.approx(0.25)
    assert metrics.pass_at_k_mean([], [], 1) is None


def test_bootstrap_interval_is_seeded_and_contains_the_mean() -> None:
    scores = np.random.default_rng(7).random(200) > 0.4
    first = metrics.bootstrap_interval(scores.astype(float))
    assert first == metrics.bootstrap_interval(scores.astype(float))
    low, high = first
    assert low < scores.mean() < high
    # Roughly the normal interval's width for a proportion (1.96 * sqrt(p(1-p)/n) each side).
    p = scores.mean()
    assert high - low == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / 200), rel=0.2)
    assert metrics.bootstrap_interval(scores.astype(float), seed=1) != first


def test_bootstrap_interval_of_constant_scores_is_that_constant_and_none_when_empty() -> None:
    assert metrics.bootstrap_interval([1.0] * 30) == (1.0, 1.0)
    assert metrics.bootstrap_interval([]) is None


def test_bootstrap_interval_draws_in_chunks_for_large_sets() -> None:
    scores = np.random.default_rng(3).random(10_000)
    low, high = metrics.bootstrap_interval(scores, resamples=500)
    assert low < scores.mean() < high and high - low < 0.03
