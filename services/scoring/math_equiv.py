"""Is a boxed answer the same value as the reference? Our layer over math-verify.

math-verify (latex2sympy + sympy) does the heavy lifting: radicals, pi and e, matrices,
intervals, sets against tuples, algebraic equality, binomials, logarithms, factorials.
This layer runs first and fixes where it is wrong or slow (each case is kept as a test):

- plain numbers (integers, decimals, fractions, thousands separators, percent) are compared
  exactly with `decimal`/`fractions`, never through sympy: a 5,000-digit answer is graded in
  microseconds, and 0.333 is not 1/3 (math-verify rounds floats and would accept 0.333333);
- a decimal is not accepted for an irrational reference (1.414214 is not sqrt 2);
- degrees, currency, `\\text{}` units, `x =` are stripped before parsing;
- answers that only a hostile model writes (integer towers, huge factorials, very deep
  nesting, pages of LaTeX) are refused without evaluation unless they equal the reference
  as text. The worker pool's per-answer time limit is the last line of defence.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

import sympy
from math_verify import parse, verify

# math-verify warns once that its signal-based timeouts are off: the pool enforces ours.
logging.getLogger("math_verify").setLevel(logging.ERROR)

MAX_ANSWER_CHARS = 1000  # past this, only plain numbers and exact text matches are graded
MAX_NESTING = 40
MAX_RAW_CHARS = 100_000  # past this, not even normalized (unless a plain number)
_TOO_LONG = f"too complex: answer longer than {MAX_ANSWER_CHARS} characters"

# `\\ ` (a row break then a space) is not the spacing command `\ `.
_SPACING = re.compile(r"(?<!\\)\\[,;:!> ]|\\quad|\\qquad|~|\\displaystyle|\\left|\\right|\\limits")
_DEGREES = re.compile(r"\^\s*+\{?\s*+\\circ\s*+\}?|°|\\degree|\\textdegree")
_CURRENCY = re.compile(r"\\\$|\$|€|£|\\euro|\\pounds")
_TEXT = re.compile(r"\\(?:text|textrm|textbf|mathrm|mathbf|mbox|textnormal|operatorname)\s*+\{([^{}]*)\}")
_LEADING_NUMBER = re.compile(r"[-+]?[\d.,]*\d")
_UNIT_WORD = re.compile(r"[A-Za-z]{2,}\.?(?:\^\{?\d\}?)?")
# Words after a number that are mathematics, not units ("5 pi" is not 5).
_MATH_WORDS = {"pi", "sqrt", "ln", "log", "sin", "cos", "tan", "cot", "sec", "csc", "exp", "frac"}
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*+=\s*+(?P<value>[^=]+)$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
# Patterns here are unambiguous or possessive (`\s*+`): no two quantifiers trade characters
# back and forth, so every one is linear on hostile input (tests keep those shapes).
_DECIMAL = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)$")
_FRACTION = re.compile(r"^(?P<sign>[-+]?)\s*+\\frac\s*+\{\s*+(?P<num>[-+]?\d+)\s*+\}\s*+\{\s*+(?P<den>[-+]?\d+)\s*+\}$")
_SLASH = re.compile(r"^(?P<num>[-+]?\d+)\s*+/\s*+(?P<den>[-+]?\d+)$")
_PERCENT = re.compile(r"\\?%$")
_INTEGER_TOWER = re.compile(r"\^\s*+\{?\s*+[-+]?\d++\s*+\^")
_HUGE_FACTORIAL = re.compile(r"\d{4,}\s*+!")


def normalize(answer: str) -> str:
    """Strip what does not change the value: spacing, degrees, currency, unit words."""
    text = answer.strip().strip("$").strip()
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = _SPACING.sub(" ", text)
    text = _DEGREES.sub("", text)
    text = _CURRENCY.sub("", text)
    # `5\text{ cm}` -> `5`; `\text{5}` -> `5`: a number keeps its value, a unit word goes.
    text = re.sub(
        r"(?<=[\d}])\s*+\\(?:text|textrm|mathrm|mbox)\s*+\{\s*+[A-Za-z][A-Za-z .]*\}(?:\^\{?\d\}?)?", "", text
    )
    text = _TEXT.sub(r"\1", text)
    text = text.replace("{,}", "").strip().rstrip(".").strip()
    text = _strip_unit_words(text)
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return _strip_redundant_parens(text)


def _strip_unit_words(text: str) -> str:
    """`12 meters` -> `12`: a number followed only by words (checked word by word, linearly)."""
    number = _LEADING_NUMBER.match(text)
    if number is None or number.end() == len(text):
        return text
    words = text[number.end() :].split()
    if words and all(_UNIT_WORD.fullmatch(w) and w.rstrip(".").lower() not in _MATH_WORDS for w in words):
        return number.group()
    return text


_OPENING = {"(": ")", "{": "}"}


def _strip_redundant_parens(text: str) -> str:
    """`((((7))))` -> `7`: bracket pairs around the whole answer that hold no tuple.

    One pass matches the brackets and records at which depths commas sit, so even a
    hostile answer of 20,000 nested parentheses is stripped in linear time.
    """
    partner: dict[int, int] = {}
    stack: list[int] = []
    comma_depths: set[int] = set()
    for index, char in enumerate(text):
        if char in "([{":
            stack.append(index)
        elif char in ")]}" and stack:
            partner[stack.pop()] = index
        elif char == ",":
            comma_depths.add(len(stack))
    low, high = 0, len(text) - 1
    # Strip the pair at depth `low` while it encloses everything and no comma sits directly
    # inside it (`(1,2)` is a tuple or an interval and keeps its brackets).
    while (
        low < high
        and _OPENING.get(text[low]) == text[high]
        and partner.get(low) == high
        and (low + 1) not in comma_depths
    ):
        low, high = low + 1, high - 1
    return text[low : high + 1].strip()


def exact_number(text: str) -> Fraction | None:
    """The exact value of a plain number (integer, decimal, fraction), else None."""
    try:
        if _DECIMAL.match(text):
            # Decimal has no digit limit (int(str) does), so 5,000 digits are fine.
            return Fraction(Decimal(text))
        match = _FRACTION.match(text) or _SLASH.match(text)
        if match and int(match["den"]) != 0:
            value = Fraction(int(match["num"]), int(match["den"]))
            return -value if match.groupdict().get("sign") == "-" else value
    except (InvalidOperation, ValueError):
        return None
    return None


def _nesting(text: str) -> int:
    """Deepest bracket nesting; negative when a bracket closes before it opens."""
    depth = deepest = 0
    for char in text:
        if char in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")}]":
            depth -= 1
            if depth < 0:
                return -1
    return deepest


_DANGLING = re.compile(r"(?:\\over|\\frac|\\sqrt|[-+*/^_=]|\\cdot|\\times)\s*+$")
_EMPTY_ARGUMENT = re.compile(r"\\(?:frac|sqrt|binom)\s*+(?:\{[^{}]*\})?\s*+\{\s*+\}")


def malformed(text: str) -> str | None:
    """Why this LaTeX is not a finished expression (latex2sympy guesses at such input)."""
    if _nesting(text) < 0 or text.count("{") != text.count("}"):
        return "malformed answer: unbalanced braces"
    if _DANGLING.search(text):
        return "malformed answer: ends with an operator"
    if _EMPTY_ARGUMENT.search(text):
        return "malformed answer: a command with an empty argument"
    return None


def too_complex(text: str) -> str | None:
    """Why evaluating this answer is refused, or None when it is safe to hand to sympy."""
    if len(text) > MAX_ANSWER_CHARS:
        return _TOO_LONG
    if _INTEGER_TOWER.search(text):
        return "too complex: a tower of integer exponents"
    if _HUGE_FACTORIAL.search(text):
        return "too complex: factorial of a number with 4+ digits"
    if _nesting(text) > MAX_NESTING:
        return f"too complex: brackets nested deeper than {MAX_NESTING}"
    return None


def _percent_value(text: str) -> Fraction | None:
    if _PERCENT.search(text):
        return exact_number(_PERCENT.sub("", text).strip())
    return None


def _is_approximation_of_irrational(pred: object, gold: object) -> bool:
    return (
        isinstance(pred, sympy.Float)
        and isinstance(gold, sympy.Expr)
        and not isinstance(gold, sympy.Float)
        and gold.is_number
        and gold.is_rational is False
    )


def quick_math_equal(answer: str, reference: str) -> tuple[str, str, tuple[bool, str] | None]:
    """The normalized pair and, when no sympy is needed, the (equal, reason) verdict.

    Plain string and regex work, microseconds: the scorer runs it in the serving process
    and sends only the rest to the worker pool.
    """
    if len(answer) > MAX_RAW_CHARS and exact_number(answer.strip()) is None:
        # Pages of LaTeX: not even normalized. Only the very same text is accepted.
        same = answer.strip() == reference.strip()
        return answer, reference, ((True, "") if same else (False, _TOO_LONG))
    pred, gold = normalize(answer), normalize(reference)
    if "=" not in gold and (assignment := _ASSIGNMENT.match(pred)):
        pred = assignment["value"].strip()
    if pred == gold:
        return pred, gold, (True, "")
    gold_number = exact_number(gold)
    pred_number = exact_number(pred)
    if pred_number is None and gold_number is not None:
        # "50%" against "50" (the percentage asked for) or against "0.5".
        percent = _percent_value(pred)
        if percent is not None:
            pred_number = percent if percent == gold_number else percent / 100
    if pred_number is not None and gold_number is not None:
        return pred, gold, ((True, "") if pred_number == gold_number else (False, "mismatch"))
    refused = too_complex(pred) or malformed(pred)
    return pred, gold, ((False, refused) if refused else None)


@lru_cache(maxsize=65536)
def math_equal(answer: str, reference: str) -> tuple[bool, str]:
    """(equal, reason): reason is empty when equal, else says why not."""
    pred, gold, quick = quick_math_equal(answer, reference)
    if quick is not None:
        return quick
    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    pred_parsed = parse(f"${pred}$", parsing_timeout=None)
    if not gold_parsed:
        return False, "unparseable reference"
    if not pred_parsed:
        return False, "unparseable answer"
    if _is_approximation_of_irrational(pred_parsed[0], gold_parsed[0]):
        return False, "mismatch: an approximation is not the exact value"
    if verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return True, ""
    return False, "mismatch"


def warm_up() -> None:
    """Build math-verify's LaTeX parser once (about a second), before workers fork."""
    math_equal("x^2+\\frac{1}{2}", "\\sqrt{2}")
