"""`startctl bench routing` end to end on a few problems: the platform on loopback with two
generation replicas, the three routings, the figures it prints and the floor it judges."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.runsc
def test_routing_bench_shows_episode_affinity_keeps_the_cache_round_robin_loses(tmp_path) -> None:
    env = {**os.environ, "START_BENCH_PROBLEMS": "4"}
    done = subprocess.run(
        [sys.executable, "-m", "startctl", "bench", "routing", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
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
    assert (done.returncode == 0) == figures["floors_met"]
    # The run leaves its tables and figures to compare with the next one.
    assert json.loads((tmp_path / "runs" / "bench-routing-latest.json").read_text()) == figures
    assert "cached share" in (tmp_path / "runs" / "bench-routing-latest.txt").read_text()
