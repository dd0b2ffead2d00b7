"""`startctl bench soak`: its options, its step-latency arithmetic, and a short real soak on
the platform on loopback whose figures and floors are checked against each other."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from startctl.bench import app, hostile
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


def _reply(status: str = "OK", stdout: str = "", stderr: str = "", exit_code: int = 0, wall_ms: float = 50.0):
    return hostile.Reply(status=status, exit_code=exit_code, stdout=stdout, stderr=stderr, wall_ms=wall_ms)


# What each shared check must call an escape; the contained replies are the ones the
# sandbox tests get from real runs (tests/services/sandbox/test_hostile_processes.py).
ESCAPES = {
    "thread bomb past the process limit": lambda: hostile.check_thread_bomb(_reply(stdout="stopped 900 can't\n")),
    "stderr flood not cut": lambda: hostile.check_stderr_flood(_reply(stderr="e" * 1_000_000)),
    "stderr flood cut late": lambda: hostile.check_stderr_flood(
        _reply("OUTPUT_LIMIT", stderr="e [output truncated]", wall_ms=9000)),
    "another process's memory": lambda: hostile.check_proc_probe(
        _reply(stdout="others 2\nread memory of 1 64\nown [0, 1, 2] 4\n")),
    "the service's secret": lambda: hostile.check_proc_probe(
        _reply(stdout="others 2\nsecret in the environment of 1\nown [0, 1, 2] 4\n")),
    "the frame channel": lambda: hostile.check_proc_probe(
        _reply(stdout="others 2\nopened 1 4 wb pipe:[7]\nown [0, 1, 2] 4\n"), pod=True),
    "an inherited descriptor": lambda: hostile.check_proc_probe(_reply(stdout="others 2\nown [0, 1, 2] 5\n")),
    "ptrace": lambda: hostile.check_ptrace(_reply(stdout="attached 1 16\ntried 3\n")),
    "a forged frame believed": lambda: hostile.check_forged_frame(_reply(stdout="forged")),
    "memory over the limit held": lambda: hostile.check_memory_across_processes(
        _reply(stdout="all children done\n"), _reply(stdout="all children done\n")),
    "a clean-up that retired the sandbox": lambda: hostile.check_planted_symlinks(
        _reply(stdout="planted 5\n/scratch/run-3\n"), _reply(stdout="[] []\n/scratch/run-1\n")),
    "a clean-up that followed a link": lambda: hostile.check_planted_symlinks(
        _reply(stdout="planted in /tmp\nplanted 5\n/s/run-3\n"), _reply(stdout="[] []\n/s/run-4\n"),
        pod=True, canary_whole=False),
}


@pytest.mark.parametrize("escape", ESCAPES)
def test_each_hostile_check_names_an_escape_instead_of_passing_it(escape: str) -> None:
    # A check that returned "" for everything would make the soak's "all contained" floor
    # and the sandbox tests hollow.
    assert ESCAPES[escape]() != ""


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
    # Redis is judged on what it holds (INFO used_memory), every other service on its RSS.
    redis_memory = figures["redis_memory"]
    for end in ("start", "end"):
        assert redis_memory[end]["used_memory"] > 0 and redis_memory[end]["connected_clients"] >= 2
        assert redis_memory[end]["used_memory_rss"] > redis_memory[end]["used_memory"]
    assert redis_memory["held_growth"] == pytest.approx(
        redis_memory["end"]["used_memory"] / redis_memory["start"]["used_memory"] - 1)
    judged = figures["memory_growth_judged"]
    assert judged == {**{name: r["growth"] for name, r in rss.items() if name != "redis"},
                      "redis (used_memory)": redis_memory["held_growth"]}
    floors = figures["floors"]
    assert floors["lost"] == (episodes["lost"] == 0)
    assert floors["memory_growth"] == all(growth <= RSS_GROWTH_FLOOR for growth in judged.values())
    assert floors["hostile"] == (figures["hostile"]["contained"] == figures["hostile"]["programs"])
    assert figures["floors_met"] == all(floors.values())
    assert (returncode == 0) == figures["floors_met"]
    assert json.loads((tmp_path / "runs" / "bench-soak-latest.json").read_text()) == figures
    assert "Memory of each service" in (tmp_path / "runs" / "bench-soak-latest.txt").read_text()
