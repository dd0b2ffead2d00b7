"""`startctl bench scoring`: our graders against plain math-verify on the labelled set.

Both grade the same math and multiple-choice cases of tests/data/scoring/labelled.jsonl
(each labelled by hand as a careful human grader would): math-verify as its README shows
it (`verify(parse(gold), parse(response))`, one case after another, its own 5 s timeouts),
ours through the service's scorer (the process pool, its per-answer budget, its cache
cold at the start). Floors (issue 5): our accuracy >= math-verify's and >= 98%; our
throughput >= 5x math-verify's. Code cases need the sandbox: graded and reported when a
sandbox answers at START_SANDBOX_ADDR, skipped (and said so) otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.common.channels import wait_serving
from services.common.settings import PeerAddresses
from services.scoring.graders import CODE, MATH, grade
from services.scoring.scorer import Item
from services.scoring.server import Settings, build_scorer
from start.v1 import common_pb2

LABELLED = Path(__file__).resolve().parents[2] / "tests" / "data" / "scoring" / "labelled.jsonl"
MIN_ACCURACY = 0.98
MIN_SPEEDUP = 5.0


def load_cases() -> list[dict]:
    return [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]


def _as_item(case: dict) -> Item:
    tests = [common_pb2.TestCase(**test) for test in case.get("tests", [])]
    return Item(case["task_type"], case["response"], case["reference"], tests)


def _hostile(case: dict) -> bool:
    return case["covers"].startswith(("hostile", "malformed"))


def math_verify_baseline(cases: list[dict]) -> tuple[dict[str, bool], dict[str, float]]:
    """Plain math-verify, sequential, default settings: verdict per id, seconds per group."""
    from math_verify import parse, verify

    verdicts: dict[str, bool] = {}
    seconds = {"ordinary": 0.0, "hostile": 0.0}
    for case in cases:
        started = time.perf_counter()
        # math-verify prints what it times out on; the benchmark's table is the output.
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                verdicts[case["id"]] = bool(verify(parse(f"${case['reference']}$"), parse(case["response"])))
            except Exception:  # noqa: BLE001 - a crash of the baseline is a wrong grade
                verdicts[case["id"]] = False
        seconds["hostile" if _hostile(case) else "ordinary"] += time.perf_counter() - started
    return verdicts, seconds


async def _ours(cases: list[dict], code_cases: list[dict]) -> tuple[dict[str, bool], dict[str, float], float]:
    """Our verdict per id and seconds per group (each group one batch, as a caller sends it)."""
    scorer = build_scorer(Settings())
    try:
        started = time.perf_counter()
        await scorer.pool.run(grade, MATH, "\\boxed{1}", "1")  # workers up, as in a serving process
        start_s = time.perf_counter() - started
        verdicts: dict[str, bool] = {}
        seconds: dict[str, float] = {}
        for group, members in (
            ("ordinary", [c for c in cases if not _hostile(c)]),
            ("hostile", [c for c in cases if _hostile(c)]),
            ("code", code_cases),
        ):
            started = time.perf_counter()
            results = await scorer.score([_as_item(case) for case in members]) if members else []
            seconds[group] = time.perf_counter() - started
            verdicts.update({case["id"]: v.correct for case, v in zip(members, results, strict=True)})
        return verdicts, seconds, start_s
    finally:
        await scorer.close()


def _accuracy(verdicts: dict[str, bool], cases: list[dict]) -> float:
    return sum(verdicts[case["id"]] == case["label"] for case in cases) / len(cases)


def _sandbox_serving() -> bool:
    try:
        wait_serving(PeerAddresses().sandbox_addr, timeout_s=2)
        return True
    except TimeoutError:
        return False


def run(console: Console) -> dict:
    every = load_cases()
    cases = [case for case in every if case["task_type"] != CODE]
    code_cases = [case for case in every if case["task_type"] == CODE] if _sandbox_serving() else []
    console.print(f"labelled set: {len(cases)} math and multiple-choice cases; grading with math-verify...")
    baseline, baseline_groups = math_verify_baseline(cases)
    console.print("grading with the scoring service's pool...")
    ours, ours_groups, start_s = asyncio.run(_ours(cases, code_cases))
    ours_acc, baseline_acc = _accuracy(ours, cases), _accuracy(baseline, cases)
    ours_s = ours_groups["ordinary"] + ours_groups["hostile"]
    baseline_s = baseline_groups["ordinary"] + baseline_groups["hostile"]
    speedup = baseline_s / ours_s
    figures = {
        "cases": len(cases),
        "accuracy": round(ours_acc, 4),
        "math_verify_accuracy": round(baseline_acc, 4),
        "seconds": round(ours_s, 3),
        "math_verify_seconds": round(baseline_s, 3),
        "cases_per_s": round(len(cases) / ours_s, 2),
        "math_verify_cases_per_s": round(len(cases) / baseline_s, 2),
        "speedup": round(speedup, 2),
        "ordinary_speedup": round(baseline_groups["ordinary"] / ours_groups["ordinary"], 2),
        "hostile_speedup": round(baseline_groups["hostile"] / ours_groups["hostile"], 2),
        "pool_start_seconds": round(start_s, 3),
        "code_cases": len(code_cases),
        "code_accuracy": round(_accuracy(ours, code_cases), 4) if code_cases else None,
        "code_seconds": round(ours_groups["code"], 3) if code_cases else None,
    }
    floors = ours_acc >= baseline_acc and ours_acc >= MIN_ACCURACY and speedup >= MIN_SPEEDUP
    if code_cases:
        floors = floors and figures["code_accuracy"] >= MIN_ACCURACY
    figures["floors_met"] = floors
    hostile = sum(_hostile(case) for case in cases)
    table = Table(
        "grader", "accuracy", "seconds", "cases/s", f"ordinary s ({len(cases) - hostile})", f"hostile s ({hostile})",
        title="scoring: labelled set (math + choice)",
    )
    table.add_row(
        "START scoring", f"{ours_acc:.1%}", f"{ours_s:.2f}", f"{figures['cases_per_s']}",
        f"{ours_groups['ordinary']:.2f}", f"{ours_groups['hostile']:.2f}",
    )
    table.add_row(
        "math-verify", f"{baseline_acc:.1%}", f"{baseline_s:.2f}", f"{figures['math_verify_cases_per_s']}",
        f"{baseline_groups['ordinary']:.2f}", f"{baseline_groups['hostile']:.2f}",
    )
    console.print(table)
    console.print(
        f"speedup {speedup:.1f}x (floor {MIN_SPEEDUP:g}x); accuracy floor {MIN_ACCURACY:.0%} and >= math-verify; "
        f"pool start {start_s:.2f} s (once per process, not in the timing)"
    )
    if code_cases:
        console.print(f"code cases through the sandbox: {figures['code_accuracy']:.1%} of {len(code_cases)}")
    else:
        console.print(f"code cases skipped: no sandbox serving at {PeerAddresses().sandbox_addr} (START_SANDBOX_ADDR)")
    console.print("floors met" if floors else "[red]floors NOT met[/red]")
    return figures
