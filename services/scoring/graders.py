"""Graders for the task types that need no sandbox: math and multiple choice.

`grade` is what a worker process of the pool runs for one item; it is plain Python so
tests, the CLI and batch jobs call it directly. Code items are graded by `code.py`
through the sandbox service instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from services.scoring.extract import MultipleLetters, choice_letter, math_answer
from services.scoring.math_equiv import math_equal, quick_math_equal

MATH = "math"
MULTIPLE_CHOICE = "multiple_choice"
CODE = "code"
TASK_TYPES = (MATH, MULTIPLE_CHOICE, CODE)


@dataclass(frozen=True)
class Verdict:
    """One item's grade. `reason` says why when not correct (empty when correct)."""

    correct: bool
    extracted: str
    reason: str = ""
    wall_ms: float = 0.0


def _answer_or_verdict(response: str) -> str | Verdict:
    """The math answer (every box of a multi-part answer, else a final-answer sentence)."""
    answer, reason = math_answer(response)
    return Verdict(False, "", reason) if answer is None else answer


# `startctl solve` and open problems have no reference: the answer is still extracted.
NO_REFERENCE = "no reference: nothing to compare the answer with"


def grade_math(response: str, reference: str) -> Verdict:
    boxed = _answer_or_verdict(response)
    if isinstance(boxed, Verdict):
        return boxed
    if not reference.strip():
        return Verdict(False, boxed, NO_REFERENCE)
    correct, reason = math_equal(boxed, reference)
    return Verdict(correct, boxed, reason)


def _reference_letter(reference: str) -> str:
    letters = re.findall(r"[A-Z]", reference.upper())
    return letters[0] if letters else reference.strip()


def grade_choice(response: str, reference: str) -> Verdict:
    try:
        letter = choice_letter(response)
    except MultipleLetters as exc:
        return Verdict(False, str(exc), f"more than one letter named: {exc}")
    if letter is None:
        return Verdict(False, "", "no answer: no chosen letter found")
    if not reference.strip():
        return Verdict(False, letter, NO_REFERENCE)
    expected = _reference_letter(reference)
    return Verdict(letter == expected, letter, "" if letter == expected else "mismatch")


def quick_grade(task_type: str, response: str, reference: str) -> Verdict | None:
    """The verdict when it needs no sympy (string and regex work only), else None."""
    if task_type == MULTIPLE_CHOICE:
        return grade_choice(response, reference)
    boxed = _answer_or_verdict(response)
    if isinstance(boxed, Verdict):
        return boxed
    if not reference.strip():
        return Verdict(False, boxed, NO_REFERENCE)
    quick = quick_math_equal(boxed, reference)[2]
    return None if quick is None else Verdict(quick[0], boxed, quick[1])


def grade(task_type: str, response: str, reference: str) -> Verdict:
    """Grade one math or multiple-choice item, timing it."""
    started = time.perf_counter()
    grader = grade_math if task_type == MATH else grade_choice
    try:
        verdict = grader(response, reference)
    except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - sympy fails in many ways
        # An answer the grader cannot evaluate is not confirmed correct; the batch goes on.
        verdict = Verdict(False, "", f"grader error: {type(exc).__name__}: {str(exc)[:200]}")
    wall_ms = (time.perf_counter() - started) * 1000
    return Verdict(verdict.correct, verdict.extracted, verdict.reason, wall_ms)
