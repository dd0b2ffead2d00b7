"""`startctl bench pipeline` end to end on a small job: a whole platform on loopback, the
figures it prints and the floors it judges."""

from __future__ import annotations

import json

import pytest

from tests.bench_runs import run_bench


@pytest.mark.slow
@pytest.mark.runsc
def test_pipeline_bench_measures_redis_memory_writer_time_and_exactly_once(tmp_path) -> None:
    returncode, figures = run_bench("pipeline", tmp_path, START_BENCH_EPISODES="48")
    assert figures["episodes"] == figures["written"] == 48 and figures["exactly_once"]
    assert figures["readings_at"] == [4, 43]
    assert figures["redis_used_memory_low"] > 0 and figures["redis_used_memory_high"] > 0
    assert figures["mean_finished_episode_bytes"] > 0, "finished episodes were sampled while they waited"
    assert 0 < figures["writer_share"] < 1 and figures["redis_commands_per_step"] > 1
    # floors_met is the floors applied to the figures printed.
    assert figures["floors_met"] == (
        figures["memory_growth"] <= 1.5 and figures["writer_share"] < 0.02 and figures["exactly_once"]
    )
    assert (returncode == 0) == figures["floors_met"]
    assert json.loads((tmp_path / "runs" / "bench-pipeline-latest.json").read_text()) == figures
