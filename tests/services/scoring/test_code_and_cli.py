"""Code answers graded through the real sandbox service, and `startctl score batch`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.scoring.labelled import labelled_cases


def _score_batch(path: Path, env: dict[str, str] | None = None) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "startctl", "score", "batch", str(path), "--json"],
        capture_output=True, text=True, timeout=180, env=env, check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_score_batch_prints_one_object_per_line_in_order(tmp_path: Path) -> None:
    lines = [
        {"task_type": "math", "response": r"so $\boxed{\frac{1}{2}}$", "reference": "0.5"},
        {"task_type": "multiple_choice", "response": "Answer: A or B", "reference": "A"},
        {"task_type": "math", "response": "I am not sure.", "reference": "1"},
        {"task_type": "multiple_choice", "response": r"$\boxed{C}$", "reference": "C"},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    results = _score_batch(path)
    assert [r["correct"] for r in results] == [True, False, False, True]
    assert results[0]["extracted"] == r"\frac{1}{2}" and "reason" not in results[0]
    assert "more than one letter" in results[1]["reason"]
    assert results[2]["reason"].startswith("no answer")


def test_score_batch_rejects_an_unknown_task_type_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"task_type": "essay", "response": "x", "reference": "y"}) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "startctl", "score", "batch", str(path), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0 and "bad.jsonl:1" in out.stderr and "essay" in out.stderr


@pytest.mark.runsc
@pytest.mark.slow
def test_code_cases_are_graded_through_the_sandbox(start_service, tmp_path: Path) -> None:
    sandbox_addr = start_service("sandbox")
    cases = labelled_cases("code")
    path = tmp_path / "code.jsonl"
    path.write_text("".join(json.dumps(case) + "\n" for case in cases))
    results = _score_batch(path, env={**os.environ, "START_SANDBOX_ADDR": sandbox_addr})
    assert [r["correct"] for r in results] == [case["label"] for case in cases]
    by_cover = {case["covers"]: r for case, r in zip(cases, results, strict=True)}
    assert "TIMEOUT" in by_cover["code timeout"]["reason"]
    assert by_cover["code no block"]["reason"].startswith("no answer")
