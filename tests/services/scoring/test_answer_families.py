"""The answer families long-CoT models write (issue 16): each family graded as a careful
human grades it, with the false cases next to the true ones."""

from __future__ import annotations

import time

import pytest

from services.scoring.extract import math_answer
from services.scoring.graders import grade
from services.scoring.math_equiv import math_equal


def _grade(response: str, reference: str) -> bool:
    return grade("math", response, reference).correct


@pytest.mark.parametrize(
    ("response", "reference", "correct"),
    [
        (r"The roots are $\boxed{2}$ and $\boxed{3}$.", "2, 3", True),
        (r"The roots are $\boxed{3}$ and $\boxed{2}$.", "2, 3", True),  # roots: unordered
        (r"The roots are $\boxed{2}$ and $\boxed{4}$.", "2, 3", False),  # a wrong root
        (r"$\boxed{2}$, $\boxed{3}$, $\boxed{5}$", "2, 3", False),  # one root too many
        (r"$\boxed{(1,2)}$ and $\boxed{(3,4)}$", "(1,2), (3,4)", True),
        (r"$\boxed{(3,4)}$ and $\boxed{(1,2)}$", "(1,2), (3,4)", True),
        (r"$\boxed{(2,1)}$ and $\boxed{(3,4)}$", "(1,2), (3,4)", False),  # a pair is ordered
        (r"$x = \boxed{2}$, $y = \boxed{3}$", "x=2, y=3", True),
        (r"$x = \boxed{3}$, $y = \boxed{2}$", "x=2, y=3", False),
        (r"\[ x = \boxed{2} \quad \text{or} \quad x = \boxed{3} \]", "3, 2", True),
        (r"(a) $\boxed{5}$ (b) $\boxed{7}$", "5, 7", True),
        (r"$\boxed{2}$ \text{ and } $\boxed{3}$", "(2, 3)", True),  # boxes take the tuple's order
        (r"$\boxed{3}$ \text{ and } $\boxed{2}$", "(2, 3)", False),
        # A change of mind is not a multi-part answer: only the last box counts.
        (r"First $\boxed{2}$. Wait, I made an error; recomputing gives $\boxed{3}$.", "3", True),
        (r"First $\boxed{2}$. Wait, I made an error; recomputing gives $\boxed{3}$.", "2, 3", False),
        # Two values for one answer: right only when both are it.
        (r"$\boxed{2}$ and $\boxed{3}$", "3", False),
        (r"$\boxed{\frac{1}{2}}$ or $\boxed{0.5}$", "0.5", True),
        (r"<think>$\boxed{2}$ and $\boxed{3}$</think> The roots are $\boxed{2}$.", "2, 3", False),
    ],
)
def test_every_box_of_a_multi_part_answer_is_read(response: str, reference: str, correct: bool) -> None:
    assert _grade(response, reference) is correct


@pytest.mark.parametrize(
    ("response", "reference", "correct"),
    [
        ("The answer is 42.", "42", True),
        ("**Final Answer:** 42", "42", True),
        ("Therefore, x = 5.", "5", True),
        ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "0.5", True),
        ("**Final Answer**\n\n$3.5$ meters", "3.5", True),
        ("The answer is 41.", "42", False),
        ("So the answer is that it grows without bound.", "42", False),  # prose is no answer
        ("<think>The answer is 42.</think> I could not finish.", "42", False),
        # A box always wins over a sentence; an unclosed box is still no answer.
        ("The answer is 42, so $\\boxed{41}$.", "42", False),
        ("The answer is 42, so $\\boxed{42", "42", False),
    ],
)
def test_final_answer_sentence_without_a_box(response: str, reference: str, correct: bool) -> None:
    assert _grade(response, reference) is correct


def test_no_box_and_no_sentence_is_no_answer() -> None:
    assert math_answer("I cannot determine it.") == (
        None,
        "no answer: no \\boxed{} and no final-answer sentence in the final answer",
    )


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("k = 45, n = 2", "45, 2", True),
        ("k = 45, n = 2", "k=45, n=2", True),
        ("n = 2, k = 45", "k=45, n=2", True),  # matched by name
        ("k = 2, n = 45", "k=45, n=2", False),
        ("k = 2, n = 45", "45, 2", False),  # distinct names: in the order written
        ("45, 2", "k=45, n=2", True),
        ("x_1 = 3, x_2 = 2", "2, 3", True),  # roots, however numbered
        ("x = 2 \\text{ or } x = 3", "2, 3", True),
        ("y = 3", "y=3", True),
        ("x = 3", "3", True),
        ("x \\in [2, 5]", "[2,5]", True),
        ("x \\in (2, 5]", "[2,5]", False),
    ],
)
def test_equations_and_assignments(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("\\{3, 1, 2\\}", "\\{1,2,3\\}", True),
        ("1, 2, 3", "\\{3,2,1\\}", True),
        ("(2, 1)", "\\{1, 2\\}", True),  # a tuple's elements against a set
        ("(2, 1)", "(1, 2)", False),  # tuples are ordered
        ("[1, 2)", "[1,2)", True),
        ("[1, 2]", "[1,2)", False),  # a closed end is not an open end
        ("(1, 2)", "[1,2]", False),
        ("1, 2", "[1,2]", False),  # an interval needs its brackets
        ("(-\\infty, 0) \\cup (1, \\infty)", "(-\\infty,0)\\cup(1,\\infty)", True),
        ("[1, 2]", "\\{1, 2\\}", False),
    ],
)
def test_sets_tuples_and_intervals(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("3 \\times 10^5", "300000", True),
        ("3e5", "300000", True),
        ("3.2 \\cdot 10^{-2}", "0.032", True),
        ("3 \\times 10^{5}", "3 \\times 10^{6}", False),
        ("2\\frac{1}{3}", "\\frac{7}{3}", True),
        ("2 1/3", "7/3", True),
        ("-2\\frac{1}{3}", "-\\frac{7}{3}", True),
        ("2\\frac{1}{3}", "\\frac{2}{3}", False),
        ("50\\%", "0.5", True),
        ("0.5", "50\\%", False),  # a percentage reference asks for the percent (RULES.md R-percent)
        ("50", "50\\%", True),
        ("5\\%", "0.5", False),
        ("30^\\circ", "30", True),
        ("30°", "60", False),
        ("12 \\text{ meters}", "12", True),
        ("2^{10}", "1024", True),
        ("\\binom{6}{3}", "15", False),
        ("\\sqrt{16}", "4", True),
        ("0.333", "\\frac13", False),  # an approximation is not the exact value
        ("0.333333", "\\frac{1}{3}", False),
    ],
)
def test_numbers_in_their_written_forms(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),
        ("\\begin{pmatrix} \\frac12 & 0 \\\\ 0 & 1 \\end{pmatrix}", "\\begin{pmatrix}0.5&0\\\\0&1\\end{pmatrix}", True),
        ("\\begin{pmatrix} 1 & 2 \\\\ 4 & 3 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", False),
        ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", False),
    ],
)
def test_matrices_entry_by_entry(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("2e^{i\\pi/3}", "1+\\sqrt{3}i", True),
        ("e^{i\\pi}", "-1", True),
        ("\\frac{1+i}{1-i}", "i", True),
        ("i^2", "-1", True),
        ("2e^{i\\pi/6}", "1+\\sqrt{3}i", False),
        ("1-\\sqrt{3}i", "1+\\sqrt{3}i", False),
    ],
)
def test_complex_numbers_and_exponential_forms(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("\\sqrt{n^2}", "n", True),  # n is a positive integer
        ("\\sqrt{k^2+2k+1}", "k+1", True),
        ("\\sqrt{n^2}", "-n", False),
        ("\\sqrt{x^2}", "x", False),  # x is real: |x|
        ("y = (x-1)^2 + 2", "y = x^2 - 2x + 3", True),  # a named part in another form
        ("y = (x-1)^2 + 3", "y = x^2 - 2x + 3", False),
        ("y_1 = (x-1)^2 + 2, y_2 = 2x", "y_1 = x^2 - 2x + 3, y_2 = x + x", True),
    ],
)
def test_what_the_question_implies(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    "response",
    [
        "\\boxed{1} and " * 20_000,
        "$\\boxed{1}$, " * 20_000 + "$\\boxed{2}$",
        "so x = " * 20_000,
        "The answer is " * 20_000,
        "Final Answer: " + " " * 50_000 + "7",
        "\\boxed{1}" + " and " * 30_000 + "\\boxed{2}",
    ],
    ids=["many-joined-boxes", "many-boxes-then-one", "many-therefores", "many-answer-is", "answer-spaces", "long-gap"],
)
def test_hostile_multi_box_and_sentence_shapes_are_linear(response: str) -> None:
    started = time.perf_counter()
    grade("math", response, "1, 2")
    grade("math", response, "7")
    assert time.perf_counter() - started < 5  # milliseconds in fact


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        (", ".join(["1"] * 20_000), "1, 1"),
        ("(" * 30 + "1, 2" + ")" * 30 + ", 3", "1, 2, 3"),
        ("\\{" + "1, " * 5_000 + "2\\}", "\\{1, 2\\}"),
        ("x = " * 5_000 + "2, y = 3", "x = 2, y = 3"),
    ],
    ids=["20k-parts", "nested-parts", "huge-set", "many-equals"],
)
def test_hostile_multi_part_answers_are_graded_quickly(answer: str, reference: str) -> None:
    started = time.perf_counter()
    assert math_equal(answer, reference)[0] is False
    assert time.perf_counter() - started < 5  # milliseconds in fact


# --- Issue 16, the provenance set's misses: each fix with its true and false cases ----------


@pytest.mark.parametrize(
    ("response", "reference", "correct"),
    [
        ("<think>\nSo $\\boxed{540}$.\n\nWait, let me double check the exterior", "540", False),  # cut off
        ("<think>\nIt is \\boxed{4}</think> The answer is $\\boxed{4}$.", "4", True),
        ("The sum is $\\boxed{540}$.", "540", True),  # no think tags at all: read whole
        ("<think>a</think> first \\boxed{3} <think> then cut off", "3", False),  # reopened, never closed
    ],
)
def test_a_response_cut_off_while_thinking_has_no_answer(response: str, reference: str, correct: bool) -> None:
    assert _grade(response, reference) is correct


def test_a_cut_off_choice_response_has_no_letter() -> None:
    assert grade("multiple_choice", "<think>\nSo $\\boxed{D}$.\n\nWait, let me make sure", "D").correct is False
    assert math_answer("<think> it is \\boxed{7}")[1].startswith("no answer: the thinking is never closed")


@pytest.mark.parametrize(
    ("response", "reference", "correct"),
    [
        ("Each position in turn: $5 \\cdot 4 \\cdot 3 \\cdot 2$.\n\nHence the number of ways is 120.", "120", True),
        ("Hence the number of ways is 120.", "24", False),
        ("Hence the number of ways is 120. But I should double-check the count.", "120", False),  # not closing
        ("So this is wrong.", "120", False),
        ("The answer is $b = -1$, $a = 3$.", "a = 3, b = -1", True),  # every piece of the sentence
        ("The answer is $b = 3$, $a = -1$.", "a = 3, b = -1", False),
        ("The answer is $2$ and $3$.", "2, 3", True),
        ("The answer is $5$, since $x = 2$ there.", "5", True),  # prose after a piece: only the first
    ],
)
def test_final_answer_sentences_read_whole(response: str, reference: str, correct: bool) -> None:
    assert _grade(response, reference) is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("3\\,\\mathrm{m/s}", "3", True),
        ("4\\,\\mathrm{m/s}", "3", False),
        ("9.8 \\text{ m/s}^2", "9.8", True),
        ("\\text{Even}", "\\text{even}", True),  # words in any capitalisation
        ("\\text{neither}", "\\text{even}", False),
        ("Wednesday", "\\text{Wednesday}", True),
        ("abc", "cab", True),  # a product of letters is not a word
    ],
)
def test_units_with_a_slash_and_word_answers(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("25", "25\\%", True),
        ("25\\%", "25\\%", True),
        ("25 \\text{ percent}", "25\\%", True),
        ("0.25", "25\\%", False),  # R-percent: 0.25 reads as 0.25 percent
        ("20\\%", "25\\%", False),
        ("25\\%", "0.25", True),  # a percent for a decimal reference is still its value
    ],
)
def test_a_percentage_reference_asks_for_the_percent(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("1 \\le x < 5", "[1, 5)", True),
        ("1 \\le x \\le 5", "[1, 5)", False),  # the ends are kept apart
        ("-2 \\leq x \\leq 2", "[-2, 2]", True),
        ("-2 < x \\leq 2", "[-2, 2]", False),
        ("y \\geq 1", "[1, \\infty)", True),
        ("y > 1", "[1, \\infty)", False),
        ("x < 3", "(-\\infty, 3)", True),
        ("5 \\ge x > 1", "(1, 5]", True),
        ("(-\\infty, 3] \\cup [3, \\infty)", "(-\\infty, 3) \\cup (3, \\infty)", False),
        ("(3, \\infty) \\cup (-\\infty, 3)", "(-\\infty, 3) \\cup (3, \\infty)", True),  # pieces in any order
        ("(1, 2] \\cup (2, 3)", "(1, 3)", True),
        ("(-\\infty, -2] \\cup [2, \\infty)", "[-2, 2]", False),
    ],
)
def test_inequalities_are_intervals(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("(3, -1)", "\\begin{pmatrix} 3 \\\\ -1 \\end{pmatrix}", True),  # a column vector as a tuple
        ("(-1, 3)", "\\begin{pmatrix} 3 \\\\ -1 \\end{pmatrix}", False),
        ("\\begin{bmatrix} 1 & 2 \\end{bmatrix}", "(1, 2)", True),
        ("(1, 2, 3)", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
        ("(1, 2, 3, 4)", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", False),
        (
            "\\frac{1}{4}\\begin{pmatrix} 2 & 0 \\\\ 0 & 1 \\end{pmatrix}",
            "\\begin{pmatrix} 0.5 & 0 \\\\ 0 & 0.25 \\end{pmatrix}",
            True,
        ),
        (
            "\\frac{1}{4}\\begin{pmatrix} 2 & 0 \\\\ 0 & 1 \\end{pmatrix}",
            "\\begin{pmatrix} 0.5 & 0 \\\\ 0 & 0.5 \\end{pmatrix}",
            False,
        ),
    ],
)
def test_vectors_and_scaled_matrices(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


_ROOTS = "-\\frac{1}{2} + \\frac{\\sqrt{3}}{2}i, -\\frac{1}{2} - \\frac{\\sqrt{3}}{2}i"


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("\\frac{-1 \\pm i\\sqrt{3}}{2}", _ROOTS, True),
        ("\\frac{1 \\pm i\\sqrt{3}}{2}", _ROOTS, False),
        ("\\pm 3", "\\{-3, 3\\}", True),
        ("x = \\pm 3", "3, -3", True),
        ("\\pm 3", "3", False),  # two values for one answer
        ("3", "\\{-3, 3\\}", False),  # one value where the reference lists two
        ("(2, 3)", "(2, 3), (3, 2)", False),  # one pair where it lists two
    ],
)
def test_plus_minus_is_two_values(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("0.\\overline{3}", "\\frac{1}{3}", True),
        ("0.\\overline{285714}", "\\frac{2}{7}", True),
        ("0.1\\overline{6}", "\\frac{1}{6}", True),
        ("-1.\\overline{3}", "-\\frac{4}{3}", True),
        ("0.\\overline{3}", "0.333", False),
        ("0.\\overline{28571}", "\\frac{2}{7}", False),
    ],
)
def test_repeating_decimals_are_exact(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("response", "reference", "correct"),
    [
        ("The maximum is $\\boxed{8}$ and the minimum is $\\boxed{-1}$.", "M = 8, m = -1", True),
        ("The maximum is $\\boxed{-1}$ and the minimum is $\\boxed{8}$.", "M = 8, m = -1", False),
        ("The maximum is $\\boxed{3}$ and the minimum is $\\boxed{-1}$.", "M = 8, m = -1", False),
        (
            "The minimum value is $m = \\boxed{-1}$ (at $x = 2$) and the maximum value is "
            "$M = \\boxed{8}$ (at $x = 5$).",
            "M = 8, m = -1",
            True,
        ),
        (
            "So $f(x) = \\boxed{(x+1)^2}$ and $g(x) = \\boxed{x^2 + 2x - 1}$.",
            "f(x) = x^2 + 2x + 1, g(x) = x^2 + 2x - 1",
            True,
        ),
        (
            "So $g(x) = \\boxed{(x+1)^2}$ and $f(x) = \\boxed{x^2 + 2x - 1}$.",
            "f(x) = x^2 + 2x + 1, g(x) = x^2 + 2x - 1",
            False,
        ),
        ("Therefore $M = \\boxed{8}$.", "M = 8, m = -1", False),
        ("$\\boxed{8}$. Wait, the minimum is $\\boxed{-1}$.", "M = 8, m = -1", False),  # prose: a change of mind
    ],
)
def test_boxes_named_in_words_or_as_functions(response: str, reference: str, correct: bool) -> None:
    assert _grade(response, reference) is correct


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("(x+1)^2", "x^2+2x+1", True),
        ("(x+2)(x-5)", "x^2 + 7x + 10", False),
        ("x^2 - 2x + y^2 + 4y - 4 = 0", "(x-1)^2 + (y+2)^2 = 9", True),  # the same circle
        ("(x-1)^2 + (y+2)^2 = 3", "(x-1)^2 + (y+2)^2 = 9", False),
        ("2x - y + 3 = 0", "y = 2x + 3", True),  # the same line
        ("2x + y + 3 = 0", "y = 2x + 3", False),
        ("\\frac{\\sqrt{2}(\\sqrt{3}+1)}{4}", "\\frac{\\sqrt{6} + \\sqrt{2}}{4}", True),
        ("\\frac{6}{\\sqrt{2}}", "3\\sqrt{2}", True),
        ("\\sqrt{6}", "2\\sqrt{6}", False),
        ("1.414", "\\sqrt{2}", False),
        ("\\frac{3\\pi}{4}", "\\frac{3}{4}\\pi", True),
        ("3.14", "\\pi", False),
        ("3i - 2", "-2 + 3i", True),
        ("\\frac{1+i}{1-i}", "i", True),
        ("\\sqrt{2}e^{-i\\pi/4}", "1 - i", True),
        ("\\sqrt{2}e^{i\\pi/4}", "1 - i", False),
        ("e^{2\\pi i/3}, e^{4\\pi i/3}", _ROOTS, True),
        ("2\\frac{1}{3} + 1", "\\frac{10}{3}", True),  # a mixed number inside a sum: left to sympy
        ("\\log_2 8", "3", True),
        ("\\log_2 9", "3", False),
        ("\\sqrt[3]{27}", "3", True),
    ],
)
def test_exact_algebra_without_sympy(answer: str, reference: str, correct: bool) -> None:
    assert math_equal(answer, reference)[0] is correct


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("(x+1)^2 + (y-2)^2 = 9", "(x-1)^2 + (y+2)^2 = 9"),
        ("2x - y + 3 = 0", "y = 2x + 3"),
        ("\\frac{-1 \\pm i\\sqrt{3}}{2}", _ROOTS),
        ("\\text{Wednesday}", "\\text{Tuesday}"),
        ("y \\geq 1", "[1, \\infty)"),
        ("(3, -1)", "\\begin{pmatrix} 3 \\\\ -1 \\end{pmatrix}"),
        ("0.\\overline{3}", "\\frac{1}{3}"),
        ("2e^{i\\pi/2}", "2i"),
        ("(-\\infty, 3] \\cup [3, \\infty)", "(-\\infty, 3) \\cup (3, \\infty)"),
        ("2", "2, -3"),
    ],
)
def test_the_new_families_are_decided_in_the_quick_path(answer: str, reference: str) -> None:
    from services.scoring.math_equiv import quick_math_equal

    assert quick_math_equal(answer, reference)[2] is not None


@pytest.mark.parametrize(
    "answer",
    [
        "(" * 5_000 + "x" + ")" * 5_000,
        "x" + "+x" * 2_000,
        "(x+1)^{12}" * 30,
        "\\sqrt{" * 200 + "2" + "}" * 200,
        "1 \\le " * 5_000 + "x",
        "0." + "1" * 5_000 + "\\overline{" + "3" * 5_000 + "}",
        "\\pm " * 5_000 + "3",
        "(1,2)\\cup" * 5_000 + "(3,4)",
        "e^{" * 500 + "i\\pi" + "}" * 500,
        "\\sqrt{99999999977}",
    ],
    ids=[
        "deep-parens",
        "long-sum",
        "big-powers",
        "nested-roots",
        "many-comparisons",
        "long-repeating",
        "many-pm",
        "many-unions",
        "nested-exponentials",
        "big-radicand",
    ],
)
def test_hostile_shapes_of_the_new_families_are_quick(answer: str) -> None:
    started = time.perf_counter()
    math_equal(answer, "x^2 + 1")
    math_equal(answer, "[1, \\infty)")
    assert time.perf_counter() - started < 5
