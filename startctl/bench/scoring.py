"""`startctl bench scoring`: our graders against plain math-verify, on two labelled sets.

- **provenance** (tests/data/scoring/provenance.jsonl): answers as long-CoT models write
  them, each labelled by a rule written down before any grader ran on it (RULES.md beside
  it; issue 16). Its accuracy is the grader's measure.
- **regression** (tests/data/scoring/labelled.jsonl): cases written while fixing the grader,
  hostile ones included; its labels may follow the grader's choices, so its accuracy is an
  upper bound.

Both graders grade the same math and multiple-choice cases: math-verify as its README shows
it (`verify(parse(gold), parse(response))`, one case after another, its own 5 s timeouts),
ours through the service's scorer (the process pool, its per-answer budget, its cache cold
at the start). Times are reported for ordinary and hostile cases apart: hostile answers
(integer towers, pages of LaTeX) are where math-verify is slowest, so they would flatter
an overall ratio. Floors (issue 16): provenance accuracy >= 98% and above math-verify's on
the same inputs; throughput >= 3x math-verify's on the ordinary cases; no case over its
time budget. Issue 5's floors stay: regression accuracy >= 98% and >= math-verify's. Code
cases need the sandbox: graded and reported when one answers at START_SANDBOX_ADDR.
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

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "scoring"
SETS = {"provenance": DATA / "provenance.jsonl", "regression": DATA / "labelled.jsonl"}
LABELLED = SETS["regression"]
MIN_ACCURACY = 0.98
MIN_ORDINARY_SPEEDUP = 3.0


def load_cases(path: Path = LABELLED) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _as_item(case: dict) -> Item:
    tests = [common_pb2.TestCase(**test) for test in case.get("tests", [])]
    return Item(case["task_type"], case["response"], case["reference"], tests)


def _hostile(case: dict) -> bool:
    return case.get("covers", "").startswith(("hostile", "malformed"))


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


async def _ours(cases: list[dict], code_cases: list[dict]) -> tuple[dict[str, bool], dict[str, float], float, float]:
    """Our verdict per id, seconds per group (each group one batch, as a caller sends it), the
    pool's start, and the longest a single case took."""
    scorer = build_scorer(Settings())
    try:
        started = time.perf_counter()
        await scorer.pool.run(grade, MATH, "\\boxed{1}", "1")  # workers up, as in a serving process
        start_s = time.perf_counter() - started
        verdicts: dict[str, bool] = {}
        seconds: dict[str, float] = {}
        longest_ms = 0.0
        for group, members in (
            ("ordinary", [c for c in cases if not _hostile(c)]),
            ("hostile", [c for c in cases if _hostile(c)]),
            ("code", code_cases),
        ):
            started = time.perf_counter()
            results = await scorer.score([_as_item(case) for case in members]) if members else []
            seconds[group] = time.perf_counter() - started
            verdicts.update({case["id"]: v.correct for case, v in zip(members, results, strict=True)})
            longest_ms = max([longest_ms, *(v.wall_ms for v in results if group != "code")])
        return verdicts, seconds, start_s, longest_ms
    finally:
        await scorer.close()


def _accuracy(verdicts: dict[str, bool], cases: list[dict]) -> float:
    return sum(verdicts[case["id"]] == case["label"] for case in cases) / len(cases) if cases else 0.0


def _sandbox_serving() -> bool:
    try:
        wait_serving(PeerAddresses().sandbox_addr, timeout_s=2)
        return True
    except TimeoutError:
        return False


def _ratio(baseline: float, ours: float) -> float | None:
    return round(baseline / ours, 2) if ours > 0 else None


def run(console: Console) -> dict:
    if not SETS["provenance"].exists():
        raise FileNotFoundError(f"{SETS['provenance']} is missing: the provenance set is part of the repository")
    sets = {name: [dict(c, set=name, id=f"{name}:{c['id']}") for c in load_cases(path)] for name, path in SETS.items()}
    every = [case for cases in sets.values() for case in cases]
    cases = [case for case in every if case["task_type"] != CODE]
    code_cases = [case for case in every if case["task_type"] == CODE] if _sandbox_serving() else []
    sizes = ", ".join(f"{name}: {len(members)}" for name, members in sets.items())
    console.print(f"{len(cases)} math and multiple-choice cases ({sizes}); grading with math-verify...")
    baseline, baseline_groups = math_verify_baseline(cases)
    console.print("grading with the scoring service's pool...")
    ours, ours_groups, start_s, longest_ms = asyncio.run(_ours(cases, code_cases))
    budget_ms = Settings().per_answer_timeout_s * 1000
    figures: dict = {"cases": len(cases)}
    table = Table("set", "cases", "START accuracy", "math-verify accuracy", title="scoring: accuracy by labelled set")
    for name in SETS:
        members = [c for c in cases if c["set"] == name]
        figures[f"{name}_cases"] = len(members)
        figures[f"{name}_accuracy"] = round(_accuracy(ours, members), 4)
        figures[f"{name}_math_verify_accuracy"] = round(_accuracy(baseline, members), 4)
        wrong = sorted(c["id"] for c in members if ours[c["id"]] != c["label"])
        figures[f"{name}_wrong"] = wrong
        table.add_row(name, str(len(members)), f"{figures[f'{name}_accuracy']:.1%}",
                      f"{figures[f'{name}_math_verify_accuracy']:.1%}")
    console.print(table)
    hostile = sum(_hostile(case) for case in cases)
    speed = Table("grader", f"ordinary s ({len(cases) - hostile})", f"hostile s ({hostile})", "ordinary cases/s",
                  title="scoring: time, ordinary and hostile cases apart")
    for label, groups in (("START scoring", ours_groups), ("math-verify", baseline_groups)):
        speed.add_row(label, f"{groups['ordinary']:.2f}", f"{groups['hostile']:.2f}",
                      f"{(len(cases) - hostile) / groups['ordinary']:.1f}" if groups["ordinary"] else "-")
    console.print(speed)
    figures.update({
        "ordinary_seconds": round(ours_groups["ordinary"], 3),
        "math_verify_ordinary_seconds": round(baseline_groups["ordinary"], 3),
        "hostile_seconds": round(ours_groups["hostile"], 3),
        "math_verify_hostile_seconds": round(baseline_groups["hostile"], 3),
        "ordinary_speedup": _ratio(baseline_groups["ordinary"], ours_groups["ordinary"]),
        "hostile_speedup": _ratio(baseline_groups["hostile"], ours_groups["hostile"]),
        "speedup": _ratio(baseline_groups["ordinary"] + baseline_groups["hostile"],
                          ours_groups["ordinary"] + ours_groups["hostile"]),
        "longest_case_ms": round(longest_ms, 1),
        "case_budget_ms": budget_ms,
        "pool_start_seconds": round(start_s, 3),
        "code_cases": len(code_cases),
        "code_accuracy": round(_accuracy(ours, code_cases), 4) if code_cases else None,
        "code_seconds": round(ours_groups["code"], 3) if code_cases else None,
    })
    floors = (
        figures["provenance_accuracy"] >= MIN_ACCURACY
        and figures["provenance_accuracy"] > figures["provenance_math_verify_accuracy"]
        and (figures["ordinary_speedup"] or 0) >= MIN_ORDINARY_SPEEDUP
        and longest_ms <= budget_ms
        and figures["regression_accuracy"] >= MIN_ACCURACY
        and figures["regression_accuracy"] >= figures["regression_math_verify_accuracy"]
    )
    if code_cases:
        floors = floors and figures["code_accuracy"] >= MIN_ACCURACY
    figures["floors_met"] = floors
    console.print(
        f"ordinary speedup {figures['ordinary_speedup']}x (floor {MIN_ORDINARY_SPEEDUP:g}x), hostile"
        f" {figures['hostile_speedup']}x; longest case {longest_ms:.0f} ms (budget {budget_ms:.0f} ms); accuracy"
        f" floor {MIN_ACCURACY:.0%} and above math-verify on the provenance set; pool start {start_s:.2f} s (once"
        " per process, not in the timing)"
    )
    for name in SETS:
        if figures[f"{name}_wrong"]:
            console.print(f"{name}: graded wrong: {', '.join(figures[f'{name}_wrong'])}")
    if code_cases:
        console.print(f"code cases through the sandbox: {figures['code_accuracy']:.1%} of {len(code_cases)}")
    else:
        console.print(f"code cases skipped: no sandbox serving at {PeerAddresses().sandbox_addr} (START_SANDBOX_ADDR)")
    console.print("floors met" if floors else "[red]floors NOT met[/red]")
    return figures
