"""`startctl bench pipeline` end to end on a small job: a whole platform on loopback, the
figures it prints and the floors it judges."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.runsc
def test_pipeline_bench_measures_redis_memory_writer_time_and_exactly_once(tmp_path) -> None:
    env = {**os.environ, "START_BENCH_EPISODES": "48"}
    done = subprocess.run(
        [sys.executable, "-m", "startctl", "bench", "pipeline", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["episodes"] == figures["written"] == 48 and figures["exactly_once"]
    assert figures["readings_at"] == [4, 43]
    assert figures["redis_used_memory_low"] > 0 and figures["redis_used_memory_high"] > 0
    assert figures["mean_finished_episode_bytes"] > 0, "finished episodes were sampled while they waited"
    assert 0 < figures["writer_share"] < 1 and figures["redis_commands_per_step"] > 1
    # floors_met is the floors applied to the figures printed.
    assert figures["floors_met"] == (
        figures["memory_growth"] <= 1.5 and figures["writer_share"] < 0.02 and figures["exactly_once"]
    )
    assert (done.returncode == 0) == figures["floors_met"]
    assert json.loads((tmp_path / "runs" / "bench-pipeline-latest.json").read_text()) == figures
