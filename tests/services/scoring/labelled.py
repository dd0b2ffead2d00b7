"""The hand-labelled scoring set (tests/data/scoring/labelled.jsonl), for the tests."""

from __future__ import annotations

import json
from pathlib import Path

LABELLED = Path(__file__).resolve().parents[2] / "data" / "scoring" / "labelled.jsonl"


def labelled_cases(*task_types: str) -> list[dict]:
    cases = [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]
    return [case for case in cases if case["task_type"] in task_types]
