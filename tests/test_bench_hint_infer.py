"""`startctl bench hint-infer` end to end on a few problems: two whole platforms on
loopback (prefix cache on and off), the figures it prints, and the floors it judges."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.runsc
def test_hint_infer_bench_measures_what_the_prefix_cache_saves(tmp_path) -> None:
    env = {**os.environ, "START_BENCH_PROBLEMS": "4"}
    done = subprocess.run(
        [sys.executable, "-m", "startctl", "bench", "hint-infer", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    plain, cached, uncached = (figures["arms"][k] for k in ("uninterrupted", "cache_on", "cache_off"))

    assert figures["problems"] == 4 and cached["correct"] == uncached["correct"]
    # Both hint-infer arms ran the same greedy episodes: the same tokens decoded.
    assert cached["decoded_tokens"] == uncached["decoded_tokens"]
    # (a) is as long as the (b) episodes, each token computed once.
    assert plain["computed_tokens"] <= cached["computed_tokens"] < uncached["computed_tokens"]
    assert uncached["cached_prompt_tokens"] == 0
    assert figures["prefill_saved_by_cache"] > 0.5
    # floors_met is the floors applied to the figures printed.
    # The limit is (a) plus the partial blocks every later call must recompute.
    assert figures["limit_tokens"] == plain["computed_tokens"] + figures["block_recompute_tokens"]
    assert figures["block_recompute_tokens"] > 0
    assert figures["cache_on_computed_over_limit"] > 0.97, "the limit is one: hint-infer cannot compute much less"
    assert 0 <= figures["cache_on_platform_share"] < 1
    assert figures["floors_met"] == (
        figures["cache_on_computed_over_limit"] <= 1.05
        and figures["cache_on_generation_time_ratio"] <= 1.1
        and figures["cache_on_platform_share"] <= 0.10
        and figures["cache_on_wall_ratio_all_at_once"] <= 3.0
    )
    assert (done.returncode == 0) == figures["floors_met"]
    # The run leaves its tables and figures to compare with the next one.
    assert json.loads((tmp_path / "runs" / "bench-hint-infer-latest.json").read_text()) == figures
    assert "hint-infer: tokens the engine computed" in (tmp_path / "runs" / "bench-hint-infer-latest.txt").read_text()
