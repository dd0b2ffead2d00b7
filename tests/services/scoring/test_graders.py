"""The math and multiple-choice graders agree with a careful human on the labelled set,
including every case where plain math-verify is wrong or slow."""

from __future__ import annotations

import time

import pytest

from services.scoring.extract import final_python_block, last_boxed
from services.scoring.graders import grade
from services.scoring.math_equiv import math_equal
from tests.services.scoring.labelled import labelled_cases

CASES = labelled_cases("math", "multiple_choice")


def test_labelled_set_is_large_and_covers_both_verdicts() -> None:
    assert len(CASES) + len(labelled_cases("code")) >= 150
    assert {case["label"] for case in CASES} == {True, False}


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_grade_matches_the_human_label(case: dict) -> None:
    verdict = grade(case["task_type"], case["response"], case["reference"])
    assert verdict.correct is case["label"], verdict
    if not verdict.correct:
        assert verdict.reason


def test_last_box_with_nested_braces_is_extracted() -> None:
    assert last_boxed(r"so $\boxed{1}$, no: $\boxed{\frac{\sqrt{3}}{2}}$.") == r"\frac{\sqrt{3}}{2}"


def test_unclosed_last_box_is_no_answer_even_after_a_closed_one() -> None:
    assert last_boxed(r"$\boxed{3}$ then $\boxed{4") is None
    assert "no answer" in grade("math", r"$\boxed{3}$ then $\boxed{4", "3").reason


def test_box_inside_thinking_is_not_the_final_answer() -> None:
    verdict = grade("math", r"<think>it is \boxed{7}</think> I give up.", "7")
    assert not verdict.correct and "no answer" in verdict.reason


def test_decimal_is_not_accepted_for_an_irrational_reference() -> None:
    # math-verify rounds to 6 places and accepts this one.
    assert math_equal("1.414214", r"\sqrt{2}") == (False, "mismatch: an approximation is not the exact value")


def test_rounded_fraction_is_not_the_exact_value() -> None:
    assert math_equal("0.333333", r"\frac{1}{3}")[0] is False


def test_five_thousand_digit_answer_is_compared_exactly_and_fast() -> None:
    big = "9" * 5000
    started = time.perf_counter()
    assert math_equal(big, big + ".0") == (True, "")
    assert math_equal(big, big[:-1] + "8")[0] is False
    assert time.perf_counter() - started < 5  # microseconds in fact; generous for a loaded machine


def test_tower_of_exponents_is_refused_without_evaluation() -> None:
    started = time.perf_counter()
    correct, reason = math_equal("9^{9^{9^{9}}}", "81")
    assert not correct and reason.startswith("too complex")
    assert time.perf_counter() - started < 5  # microseconds in fact; generous for a loaded machine


def test_malformed_latex_is_not_guessed_into_a_number() -> None:
    # latex2sympy reads `3 \over` as 3.
    assert math_equal(r"3 \over", "3") == (False, "malformed answer: ends with an operator")


def test_one_megabyte_response_is_graded_quickly() -> None:
    response = "Let me think. " * 75_000 + r"So the answer is $\boxed{42}$."
    assert len(response) > 1_000_000
    started = time.perf_counter()
    assert grade("math", response, "42").correct
    assert grade("multiple_choice", response.replace("42", "B"), "B").correct
    assert time.perf_counter() - started < 10  # linear: tens of ms; quadratic would take minutes


def test_final_python_block_is_the_last_tagged_block_after_thinking() -> None:
    response = "<think>```python\nprint(1)\n```</think>\n```python\nprint(2)\n```\n```python\nprint(3)\n```"
    assert final_python_block(response) == "print(3)\n"
    assert final_python_block("<think>```python\nprint(1)\n```</think> done") is None


def test_many_unclosed_fences_are_scanned_in_linear_time() -> None:
    response = "```python\nx = 1\n" * 100_000
    started = time.perf_counter()
    assert final_python_block(response) == "x = 1\n"
    assert time.perf_counter() - started < 10  # linear: well under a second


def test_output_blocks_are_not_taken_for_code() -> None:
    response = "```python\nprint(2)\n```\n```output\n2\n```"
    assert final_python_block(response) == "print(2)\n"


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("(" * 20_000 + "7" + ")" * 20_000, "7", True),
        ("9" * 20_000 + "x", "1", False),
        ("5 " + "abc" * 2_000 + "1", "5", False),
        ("x+" * 60_000 + "x", "1", False),
    ],
    ids=["20k-nested-parens", "20k-digits-and-a-letter", "long-unit-like-tail", "120k-chars"],
)
def test_hostile_answer_shapes_are_graded_in_linear_time(answer: str, reference: str, correct: bool) -> None:
    # These shapes made the normalizing regexes backtrack (seconds to minutes) before.
    started = time.perf_counter()
    assert math_equal(answer, reference)[0] is correct
    assert time.perf_counter() - started < 5  # milliseconds in fact


@pytest.mark.parametrize(
    "response",
    ["Answer" + " " * 20_000 + "x", "answer: " * 8_000, "(A" * 30_000, "\\boxed{" * 8_000, "\\boxed" + " " * 30_000],
    ids=["answer-then-spaces", "many-answer-keywords", "unclosed-letter-parens", "unclosed-boxes", "box-then-spaces"],
)
def test_hostile_response_shapes_are_extracted_in_linear_time(response: str) -> None:
    # "Answer" followed by spaces made the choice regex search cubically before.
    started = time.perf_counter()
    assert not grade("multiple_choice", response, "A").correct
    assert not grade("math", response, "1").correct
    assert time.perf_counter() - started < 5  # milliseconds in fact


@pytest.mark.parametrize("answer", ["^" + " " * 20_000 + "%", "^" + " " * 20_000 + "x", "^{" + " " * 20_000 + "="])
def test_caret_then_pages_of_spaces_is_graded_in_linear_time(answer: str) -> None:
    # The degree and exponent-tower patterns searched quadratically here before.
    started = time.perf_counter()
    assert not math_equal(answer, "1")[0]
    assert time.perf_counter() - started < 5  # milliseconds in fact
