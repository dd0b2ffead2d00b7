"""`startctl bench soak`: its options, its step-latency arithmetic, and a short real soak on
the platform on loopback whose figures and floors are checked against each other."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from startctl.bench import app
from startctl.bench.hostile import CATALOGUE
from startctl.bench.soak import RSS_GROWTH_FLOOR, histogram_quantile
from tests.bench_runs import run_bench

SERVICES = {"redis", "generation", "hints", "sandbox", "scoring", "orchestrator", "worker"}


def bench(*args: str):  # noqa: ANN201 - click's Result
    """`startctl bench ARGS` in this process (the options are parsed as the CLI parses them)."""
    return CliRunner().invoke(app, list(args))


def test_soak_takes_its_own_options_and_other_benches_keep_theirs() -> None:
    soak = bench("soak", "--help")
    assert soak.exit_code == 0 and "--minutes" in soak.output and "--episodes" in soak.output
    sandbox = bench("sandbox", "--help")
    assert sandbox.exit_code == 0 and "--json" in sandbox.output and "--minutes" not in sandbox.output
    # A bench without options refuses one instead of passing it on.
    assert bench("sandbox", "--minutes", "1").exit_code == 2
    assert bench("soak", "--episodes", "many").exit_code == 2


def test_a_soak_of_no_minutes_is_refused_before_anything_starts() -> None:
    done = bench("soak", "--minutes", "0")
    assert done.exit_code == 2
    assert "--minutes must be more than 0" in done.output


def test_step_latency_quantiles_interpolate_within_buckets_as_prometheus_does() -> None:
    # 10 steps: 4 under 0.1 s, 4 more under 1 s, 2 more under 10 s (cumulative buckets).
    cumulative = {0.1: 4, 1.0: 8, 10.0: 10, float("inf"): 10}
    assert histogram_quantile(0.5, cumulative) == pytest.approx(0.1 + 0.9 * (5 - 4) / 4)
    assert histogram_quantile(0.99, cumulative) == pytest.approx(1.0 + 9.0 * (9.9 - 8) / 2)
    assert histogram_quantile(0.2, cumulative) == pytest.approx(0.1 * 2 / 4)
    # Past the last finite bound all that can be said is that bound.
    assert histogram_quantile(0.99, {1.0: 1, float("inf"): 10}) == 1.0
    assert histogram_quantile(0.5, {1.0: 0, float("inf"): 0}) == 0.0


@pytest.mark.slow
@pytest.mark.runsc
def test_short_soak_reports_every_figure_and_judges_its_floors_from_them(tmp_path) -> None:
    returncode, figures = run_bench("soak", tmp_path, "--minutes", "0.5", "--episodes", "16")

    episodes = figures["episodes"]
    assert figures["in_flight"] == 16 and figures["minutes"] == 0.5
    assert episodes["done"] > 0 and episodes["accepted"] == episodes["finished"] + episodes["lost"]
    assert 0 < episodes["hint_infer"] < episodes["finished"], "greedy and hint-infer episodes both ran"
    assert episodes["tool_calls"] > 0, "the episodes used the sandbox"
    assert episodes["lost"] == 0 and episodes["lost_ids"] == []
    assert sum(figures["errors"].values()) >= episodes["failed"]

    latency = figures["step_latency_s"]
    assert {"all", "start", "generate", "run_tool"} <= set(latency)
    assert 0 < latency["all"]["p50"] <= latency["all"]["p99"] and latency["all"]["steps"] > 0
    assert latency["all"]["steps"] == sum(s["steps"] for action, s in latency.items() if action != "all")

    rss = figures["rss"]
    assert set(rss) == SERVICES
    for name, r in rss.items():
        assert r["start_mb"] > 0 and r["end_mb"] > 0, name
        assert r["growth"] == pytest.approx(r["end_mb"] / r["start_mb"] - 1)
    # The trees, not only the top processes: vLLM's engine core, the sandbox's runsc processes.
    assert rss["generation"]["processes_start"] >= 2 and rss["sandbox"]["processes_start"] >= 2

    rounds = figures["hostile"]["rounds"]
    assert len(rounds) == 2 and rounds[0]["at_s"] < rounds[1]["at_s"]
    for r in rounds:
        assert [p["name"] for p in r["programs"]] == list(CATALOGUE)
    assert figures["hostile"]["contained"] == figures["hostile"]["programs"] == 2 * len(CATALOGUE)

    # The floors come from the figures above. The RSS floor itself is not asserted: the
    # sandbox's tree moves by +-5% from one instant to the next with what its runs are doing
    # (measured on an idle sandbox service: 710 to 775 MiB over the hostile catalogue and 20
    # plain runs), and its first fork bomb adds about 30 of gVisor's ptrace stub processes
    # that stay (about +3%); over 10 minutes real growth would stand out of that, over 30
    # seconds a 10% floor would judge noise.
    floors = figures["floors"]
    assert floors["lost"] == (episodes["lost"] == 0)
    assert floors["rss_growth"] == all(r["growth"] <= RSS_GROWTH_FLOOR for r in rss.values())
    assert floors["hostile"] == (figures["hostile"]["contained"] == figures["hostile"]["programs"])
    assert figures["floors_met"] == all(floors.values())
    assert (returncode == 0) == figures["floors_met"]
    assert json.loads((tmp_path / "runs" / "bench-soak-latest.json").read_text()) == figures
    assert "RSS of each service" in (tmp_path / "runs" / "bench-soak-latest.txt").read_text()
