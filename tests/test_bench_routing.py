"""`startctl bench routing` end to end on a few problems: the platform on loopback with two
generation replicas, the three routings, the figures it prints and the floor it judges."""

from __future__ import annotations

import json

import pytest

from tests.bench_runs import run_bench


@pytest.mark.slow
@pytest.mark.runsc
def test_routing_bench_shows_episode_affinity_keeps_the_cache_round_robin_loses(tmp_path) -> None:
    returncode, figures = run_bench("routing", tmp_path, START_BENCH_PROBLEMS="4")
    single, affinity, round_robin = (figures["arms"][k] for k in ("single", "affinity", "round_robin"))

    assert figures["episodes"] == 4
    for arm in (single, affinity, round_robin):
        assert arm["episodes"] == 4 and arm["prompt_tokens"] > 0
    # One replica took every call of the single arm; affinity kept every call on its episode's
    # own replica (nothing saturates at 4 episodes); round robin alternated between the two.
    assert len(single["calls_by_replica"]) == 1
    assert set(affinity["calls_by_route"]) == {"own"} and affinity["spills"] == 0
    rr_calls = list(round_robin["calls_by_replica"].values())
    assert len(rr_calls) == 2 and abs(rr_calls[0] - rr_calls[1]) <= 1
    # The point of the routing: steps that move lose their cache.
    assert affinity["cached_share"] > round_robin["cached_share"]
    assert figures["floors_met"] == (figures["affinity_vs_single"] >= 0.95)
    assert (returncode == 0) == figures["floors_met"]
    # The run leaves its tables and figures to compare with the next one.
    assert json.loads((tmp_path / "runs" / "bench-routing-latest.json").read_text()) == figures
    assert "cached share" in (tmp_path / "runs" / "bench-routing-latest.txt").read_text()
