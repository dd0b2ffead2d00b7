"""The repetition detector flags the looping traces START drops and keeps healthy ones.

The examples here are the calibration set of the default thresholds (services/scoring/
server.py): healthy traces with the repetition real reasoning has (short "Wait," lines,
a re-checked equation, a repeated phrase) and degenerate ones of each pattern.
"""

from __future__ import annotations

import pytest

from services.scoring.repetition import RepetitionThresholds, detect_repetition

DEFAULTS = RepetitionThresholds()

HEALTHY = {
    "arithmetic with checks": (
        "We need 37 * 43. 37 * 43 = 37 * 40 + 37 * 3 = 1480 + 111 = 1591.\n"
        "Wait,\nlet me verify with the difference of squares: 37 * 43 = (40 - 3)(40 + 3) = 1600 - 9 = 1591.\n"
        "Wait,\nboth agree, so the product is 1591.\n"
        "```python\nprint(37 * 43)\n```\n```output\n1591\n```\nThe tool confirms it: the answer is 1591."
    ),
    "long varied reasoning": "\n\n".join(
        f"Step {i}: consider n = {i}. Then n^2 + n + 41 = {i * i + i + 41}, and we check whether it is prime "
        f"by trial division up to {int((i * i + i + 41) ** 0.5) + 1}; the smallest factor found is "
        f"{next((d for d in range(2, i * i + i + 42) if (i * i + i + 41) % d == 0), 0)}."
        for i in range(40)
    ),
    "a repeated check line among different work": (
        "Let x = 3. Then 2x + 1 = 7.\nLet me double-check the substitution carefully.\n"
        "Let x = 4. Then 2x + 1 = 9.\nLet me double-check the substitution carefully.\n"
        "Let x = 5. Then 2x + 1 = 11, and the pattern is 2x + 1 grows by two each time, so for x = 10 it is 21."
    ),
    "short answer": r"The answer is $\boxed{12}$.",
}

REPETITIVE = {
    "same paragraph again and again": "I start again from the beginning.\n\n"
    + "\n\n".join(["Let me reconsider the problem. We have 3 apples and 4 oranges, so the total is 7."] * 12),
    "a cycle of lines": "Setup.\n"
    + "\n".join(["First, compute the sum of the digits.", "Then, check divisibility by three.",
                 "If it fails, go back and recompute."] * 15),
    "one phrase looping without newlines": "So the answer is " + "the value we found before, which is " * 60,
    "a digit string for pages": "The decimal expansion is 0." + "142857" * 2000,
}


@pytest.mark.parametrize("name", list(HEALTHY))
def test_healthy_trace_is_kept(name: str) -> None:
    verdict = detect_repetition(HEALTHY[name], DEFAULTS)
    assert not verdict.repetitive, verdict
    assert verdict.score < 1.0


@pytest.mark.parametrize("name", list(REPETITIVE))
def test_looping_trace_is_flagged_with_the_measure_that_tripped(name: str) -> None:
    verdict = detect_repetition(REPETITIVE[name], DEFAULTS)
    assert verdict.repetitive, verdict
    assert verdict.score >= 1.0 and "threshold" in verdict.reason


def test_thresholds_come_from_settings() -> None:
    text = HEALTHY["a repeated check line among different work"]
    strict = RepetitionThresholds(max_duplicate_line_fraction=0.05)
    assert detect_repetition(text, strict).repetitive
    assert not detect_repetition(text, DEFAULTS).repetitive
