"""Is a boxed answer the same value as the reference? Our layer over math-verify.

math-verify (latex2sympy + sympy) does the heavy lifting: radicals, pi and e, matrices,
intervals, sets against tuples, algebraic equality, binomials, logarithms, factorials.
This layer runs first and fixes where it is wrong or slow (each case is kept as a test):

- plain numbers (integers, decimals, fractions, thousands separators, percent) are compared
  exactly with `decimal`/`fractions`, never through sympy: a 5,000-digit answer is graded in
  microseconds, and 0.333 is not 1/3 (math-verify rounds floats and would accept 0.333333);
- a decimal is not accepted for an irrational reference (1.414214 is not sqrt 2);
- degrees, currency, `\\text{}` units, `x =` are stripped before parsing;
- scientific notation, mixed numbers, small powers, factorials and binomials are exact
  numbers too, and text equal up to spacing is equal;
- multi-part answers (lists, sets, tuples, intervals, matrices, named parts) are compared
  part by part with the reference's structure, each part by this whole grader (see
  _structured_equal), so a list of plain numbers never reaches sympy;
- after math-verify says no, the question's usual assumptions are tried: n, k, m positive
  integers, `i` the imaginary unit (see _equal_under_assumptions);
- answers that only a hostile model writes (integer towers, huge factorials, very deep
  nesting, pages of LaTeX) are refused without evaluation unless they equal the reference
  as text. The worker pool's per-answer time limit is the last line of defence.
"""

from __future__ import annotations

import logging
import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

import sympy
from math_verify import parse, verify

from services.scoring.polynomial import DECIMAL as _DECIMAL
from services.scoring.polynomial import polynomial_equal

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
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
# Patterns here are unambiguous or possessive (`\s*+`): no two quantifiers trade characters
# back and forth, so every one is linear on hostile input (tests keep those shapes).
_FRACTION = re.compile(r"^(?P<sign>[-+]?)\s*+\\frac\s*+\{\s*+(?P<num>[-+]?\d+)\s*+\}\s*+\{\s*+(?P<den>[-+]?\d+)\s*+\}$")
_SLASH = re.compile(r"^(?P<num>[-+]?\d+)\s*+/\s*+(?P<den>[-+]?\d+)$")
_PERCENT = re.compile(r"\\?%$")
_INTEGER_TOWER = re.compile(r"\^\s*+\{?\s*+[-+]?\d++\s*+\^")
_HUGE_FACTORIAL = re.compile(r"\d{4,}\s*+!")


def normalize(answer: str) -> str:
    """Strip what does not change the value: spacing, degrees, currency, unit words."""
    text = answer.strip().strip("$").strip()
    text = re.sub(r"\\[dt](frac|binom)", r"\\\1", text)
    text = _SPACING.sub(" ", text)
    text = _DEGREES.sub("", text)
    text = _CURRENCY.sub("", text)
    # `5\text{ cm}` -> `5`; `\text{5}` -> `5`: a number keeps its value, a unit word goes.
    text = re.sub(
        r"(?<=[\d}])\s*+\\(?:text|textrm|mathrm|mbox)\s*+\{\s*+(?!(?:and|or)\b)[A-Za-z][A-Za-z ./^\d]*\}"
        r"(?:\^\{?\d\}?)?",
        "",
        text,
    )
    text = _TEXT.sub(r"\1", text)
    text = text.replace("{,}", "").strip().rstrip(".").strip()
    text = _strip_unit_words(text)
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return _strip_redundant_parens(_compact(text))


_SHORT_FRACTION = re.compile(r"\\frac\s*+(\d)\s*+(\d)")
_SINGLE_BRACED = re.compile(r"([_^])\{(\w)\}")
_WHITESPACE = re.compile(r"\s++")


def _compact(text: str) -> str:
    """One spelling for what LaTeX writes several ways: `\\frac12` is `\\frac{1}{2}`, `x^{2}`
    is `x^2`, and whitespace next to a symbol goes (`(1, 2) \\cup (3, 4)` is `(1,2)\\cup(3,4)`);
    whitespace between two letters or digits stays (`\\pi r`, `2 1/3`)."""
    text = _SHORT_FRACTION.sub(r"\\frac{\1}{\2}", text)
    text = _SINGLE_BRACED.sub(r"\1\2", text)
    return _WHITESPACE.sub(_keep_space_between_words, text)


def _keep_space_between_words(match: re.Match) -> str:
    text, start, end = match.string, match.start(), match.end()
    if start > 0 and end < len(text) and text[start - 1].isalnum() and text[end].isalnum():
        return " "
    return ""


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
    """The exact value of a plain number (integer, decimal, fraction, scientific notation,
    mixed number), else None."""
    try:
        if _DECIMAL.match(text):
            # Decimal has no digit limit (int(str) does), so 5,000 digits are fine.
            return Fraction(Decimal(text))
        match = _FRACTION.match(text) or _SLASH.match(text)
        if match and int(match["den"]) != 0:
            value = Fraction(int(match["num"]), int(match["den"]))
            return -value if match.groupdict().get("sign") == "-" else value
        if len(text) <= MAX_ANSWER_CHARS:
            return _scientific(text) or _mixed_number(text) or _integer_expression(text) or _repeating(text)
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
    words = _word_answers(answer, pred, reference, gold)
    return pred, gold, words if words is not None else _decide(pred, gold, full=False)


_WORDS = re.compile(r"[A-Za-z]++(?: [A-Za-z]++)*+")
_TEXT_COMMAND = re.compile(r"\\(?:text|textrm|textbf|mathrm|mbox|textnormal)\s*+\{")


def _is_word_answer(raw: str, text: str) -> bool:
    """`\\text{even}`, `Wednesday`: words (in `\\text{}`, or a word of 4+ letters), not a
    product of variables (`abc`)."""
    if not _WORDS.fullmatch(text):
        return False
    return bool(_TEXT_COMMAND.search(raw)) or any(
        len(word) >= 4 and word.lower() not in _MATH_WORDS for word in text.split()
    )


def _word_answers(answer: str, pred: str, reference: str, gold: str) -> tuple[bool, str] | None:
    """Two word answers are compared as words, in any capitalisation (`\\text{Even}` is `even`)."""
    if len(pred) > 200 or len(gold) > 200 or not (_is_word_answer(reference, gold) and _is_word_answer(answer, pred)):
        return None
    return (True, "") if pred.casefold() == gold.casefold() else (False, "mismatch")


@lru_cache(maxsize=65536)
def math_equal(answer: str, reference: str) -> tuple[bool, str]:
    """(equal, reason): reason is empty when equal, else says why not."""
    pred, gold, quick = quick_math_equal(answer, reference)
    if quick is not None:
        return quick
    return _decide(pred, gold, full=True)


def _decide(pred: str, gold: str, full: bool) -> tuple[bool, str] | None:
    """The verdict on a normalized pair; without `full`, None where only sympy can decide."""
    if pred == gold:
        return True, ""
    gold_number = exact_number(gold)
    pred_number = exact_number(pred) if gold_number is not None else None
    if pred_number is not None and gold_number is not None:
        # The common case first: two plain numbers, compared exactly.
        return (True, "") if pred_number == gold_number else (False, "mismatch")
    pred, gold = _rewrite_pair(pred, gold)
    if "\\cup" in pred or "\\cup" in gold:
        union = _union_equal(pred, gold)
        if union is not None:
            return union
    structured = _structured_equal(pred, gold, full)
    if structured is not _NOT_MULTIPART:
        return structured
    pred, gold = _unname(pred, gold)
    if pred == gold:
        return True, ""
    gold_number = exact_number(gold)
    pred_number = exact_number(pred)
    if pred_number is None and gold_number is not None:
        # "50%" against "50" (the percentage asked for) or against "0.5".
        percent = _percent_value(pred)
        if percent is not None:
            pred_number = percent if percent == gold_number else percent / 100
    elif gold_number is None and pred_number is None:
        # "20\%" against "25\%".
        pred_number, gold_number = _percent_value(pred), _percent_value(gold)
    elif gold_number is None and pred_number is not None:
        # A reference of "25\%" asks for a percent: "25" and "25%" are it, "0.25" is not
        # (RULES.md R-percent: 0.25 reads as 0.25%).
        gold_number = _percent_value(gold)
    if pred_number is not None and gold_number is not None:
        return (True, "") if pred_number == gold_number else (False, "mismatch")
    refused = too_complex(pred) or malformed(pred)
    if refused:
        return False, refused
    polynomials = polynomial_equal(pred, gold)
    if polynomials is not None:
        return polynomials
    matrices = _matrix_equal(pred, gold, full)
    if matrices is not _NOT_MULTIPART:
        return matrices
    return _sympy_equal(pred, gold) if full else None


def _sympy_equal(pred: str, gold: str) -> tuple[bool, str]:
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
    if _equal_under_assumptions(pred_parsed[0], gold_parsed[0]):
        return True, ""
    return False, "mismatch"


# --- What the question implies -------------------------------------------------------
#
# The Score API has no question text, so the grader assumes what such questions state:
# n, k, m (and n_1, k_i...) are positive integers, x, y... are real (math-verify's symbols
# are real already), and `i` is the imaginary unit. Tried only after math-verify said no,
# so the common path pays nothing.
_POSITIVE_INTEGER_NAMES = {"n", "k", "m"}
_NUMERIC_DIGITS = 50
_MAX_OPS = 400  # sympy's simplify on bigger expressions is left to math-verify's verdict


def _assume(expr: sympy.Basic) -> sympy.Basic:
    replacements: dict[sympy.Basic, sympy.Basic] = {}
    for symbol in expr.free_symbols:
        if not isinstance(symbol, sympy.Symbol):
            continue
        if symbol.name == "i":
            replacements[symbol] = sympy.I
        elif symbol.name.split("_")[0] in _POSITIVE_INTEGER_NAMES:
            replacements[symbol] = sympy.Symbol(symbol.name, positive=True, integer=True)
    return expr.xreplace(replacements) if replacements else expr


def _equal_under_assumptions(pred: object, gold: object) -> bool:
    r"""`\sqrt{n^2}` = `n`, `2e^{i\pi/3}` = `1+\sqrt{3}i`, `i^2` = `-1`: equal once the
    assumptions hold. Numbers are compared exactly after expanding complex exponentials,
    else by a 50-digit evaluation (no float in either: 0.333 stays unequal to 1/3)."""
    if not isinstance(pred, sympy.Expr) or not isinstance(gold, sympy.Expr):
        return False
    assumed_pred, assumed_gold = _assume(pred), _assume(gold)
    if assumed_pred == pred and assumed_gold == gold:
        return False
    difference = assumed_pred - assumed_gold
    if difference == 0:
        return True
    if difference.has(sympy.Float) or sympy.count_ops(difference) > _MAX_OPS:
        return False
    if not difference.free_symbols:
        return _numerically_zero(difference)
    # sqrt(k^2+2k+1) is k+1 once its radicand is factored (k > 0).
    difference = difference.replace(
        lambda e: e.is_Pow and not e.exp.is_Integer, lambda e: sympy.Pow(sympy.factor(e.base), e.exp)
    )
    if difference == 0:
        return True
    symbols = sorted(difference.free_symbols, key=str)
    if all(symbol.is_integer and symbol.is_positive for symbol in symbols):
        # Only positive integers: equal at every sample point (parities, several sizes) is equal.
        return all(
            _numerically_zero(difference.subs({s: _SAMPLES[(i + j) % len(_SAMPLES)] for j, s in enumerate(symbols)}))
            for i in range(len(_SAMPLES))
        )
    return sympy.simplify(sympy.expand_complex(difference)) == 0


_SAMPLES = (1, 2, 3, 5, 8, 13, 21)


def _numerically_zero(number: sympy.Expr) -> bool:
    value = sympy.N(number, _NUMERIC_DIGITS)
    return bool(value.is_number) and abs(value) < sympy.Float(10) ** (10 - _NUMERIC_DIGITS)


# --- Numbers a person reads at once ----------------------------------------------------

_SCIENTIFIC = re.compile(
    r"^(?P<mantissa>[-+]?(?:\d++(?:\.\d*+)?|\.\d++))\s*+"
    r"(?:(?:\\times|\\cdot|\*)\s*+10\s*+\^\s*+(?:\{\s*+(?P<braced>[-+]?\d++)\s*+\}|(?P<digit>\d))|[eE](?P<e>[-+]?\d++))$"
)
_MIXED = re.compile(
    r"^(?P<sign>[-+]?)(?P<whole>\d++)(?:\s*+\\frac\s*+\{\s*+(?P<num>\d++)\s*+\}\s*+\{\s*+(?P<den>\d++)\s*+\}"
    r"|\s++(?P<snum>\d++)\s*+/\s*+(?P<sden>\d++))$"
)
MAX_EXPONENT = 10_000  # 3 \times 10^{10000} is still exact; past that, sympy (and its budget)


_REPEATING = re.compile(
    r"^(?P<sign>[-+]?)(?P<whole>\d*+)\.(?P<head>\d*+)\s*+\\(?:overline|bar)\s*+\{\s*+(?P<cycle>\d{1,50})\s*+\}$"
)


def _repeating(text: str) -> Fraction | None:
    r"""`0.\overline{3}` is 1/3, `0.1\overline{6}` is 1/6: a repeating decimal, exactly."""
    match = _REPEATING.match(text)
    if match is None:
        return None
    head, cycle = match["head"], match["cycle"]
    value = int(match["whole"] or 0) + Fraction(int(head or 0), 10 ** len(head))
    value += Fraction(int(cycle), (10 ** len(cycle) - 1) * 10 ** len(head))
    return -value if match["sign"] == "-" else value


def _scientific(text: str) -> Fraction | None:
    """`3 \\times 10^5`, `3 \\cdot 10^{-2}`, `3e5`: exact."""
    match = _SCIENTIFIC.match(text)
    if match is None:
        return None
    exponent = int(match["braced"] or match["digit"] or match["e"])
    if abs(exponent) > MAX_EXPONENT:
        return None
    return Fraction(Decimal(match["mantissa"])) * Fraction(10) ** exponent


def _mixed_number(text: str) -> Fraction | None:
    r"""`2\frac{1}{3}` and `2 1/3` are two and a third (7/3), as a person reads them: a
    proper fraction right after a whole number. (`2 \cdot \frac13` is the product.)"""
    match = _MIXED.match(text)
    if match is None:
        return None
    num, den = int(match["num"] or match["snum"]), int(match["den"] or match["sden"])
    if not 0 < num < den:
        return None
    value = int(match["whole"]) + Fraction(num, den)
    return -value if match["sign"] == "-" else value


_INTEGER_POWER = re.compile(
    r"^(?P<sign>-?)(?P<base>\d{1,12})\s*+\^\s*+(?:\{\s*+(?P<braced>-?\d{1,4})\s*+\}|(?P<digit>\d))$"
)
_SMALL_FACTORIAL = re.compile(r"^(?P<n>\d{1,3})\s*+!$")
_SMALL_BINOMIAL = re.compile(r"^\\binom\s*+\{\s*+(?P<n>\d{1,4})\s*+\}\s*+\{\s*+(?P<k>\d{1,4})\s*+\}$")
_SQUARE_ROOT = re.compile(r"^\\sqrt\s*+\{\s*+(?P<n>\d{1,30})\s*+\}$")
_ROOT = re.compile(r"^\\sqrt\s*+\[\s*+(?P<k>\d{1,2})\s*+\]\s*+\{\s*+(?P<n>\d{1,30})\s*+\}$")
_LOGARITHM = re.compile(
    r"^\\log(?:_\s*+(?:\{\s*+(?P<base>\d{1,6})\s*+\}|(?P<digit>\d)))?\s*+(?:\(\s*+(?P<paren>\d{1,30})\s*+\)|(?P<bare>\d{1,30}))$"
)
MAX_POWER = 1000


def _integer_expression(text: str) -> Fraction | None:
    """`2^{10}`, `5!`, `\\binom{5}{2}`, `\\sqrt{16}`: small exact integers, no sympy (a square
    root that is not an integer is left to sympy, which knows it is irrational)."""
    if match := _INTEGER_POWER.match(text):
        exponent = int(match["braced"] or match["digit"])
        base = int(match["base"])
        if abs(exponent) > MAX_POWER or (base == 0 and exponent < 0):
            return None
        value = Fraction(base) ** exponent
        return -value if match["sign"] else value
    if match := _SMALL_FACTORIAL.match(text):
        return Fraction(math.factorial(int(match["n"])))
    if match := _SMALL_BINOMIAL.match(text):
        return Fraction(math.comb(int(match["n"]), int(match["k"])))
    if match := _SQUARE_ROOT.match(text):
        root = math.isqrt(int(match["n"]))
        return Fraction(root) if root * root == int(match["n"]) else None
    if match := _ROOT.match(text):
        degree, radicand = int(match["k"]), int(match["n"])
        root = round(radicand ** (1 / degree)) if 2 <= degree <= 20 else -1
        return Fraction(root) if root >= 0 and root**degree == radicand else None
    if match := _LOGARITHM.match(text):
        # `\log_2 8` is 3; a logarithm that is not an integer is sympy's.
        base, argument = int(match["base"] or match["digit"] or 10), int(match["paren"] or match["bare"])
        power = 0
        while base > 1 and argument > 1 and argument % base == 0:
            argument //= base
            power += 1
        return Fraction(power) if base > 1 and argument == 1 else None
    return None


# --- Multi-part answers ------------------------------------------------------------------
#
# A list of values (`2, 3`, several boxes joined, `2 and 3`, `x = 2 or x = 3`), a set
# `\{1, 2\}`, a tuple `(1, 2)` or an interval `[1, 2)` is compared part by part, each
# part with the whole grader (so plain-number parts never reach sympy):
# - the reference's structure decides: a tuple or an interval is ordered and its brackets
#   must be the same (an open end is not a closed one); a set or a bare list (roots) is
#   unordered, a tuple or list answer is read as its elements;
# - named parts (`k = 45, n = 2`) are matched by name when both sides name them; when one
#   side names distinct quantities (`x = 2, y = 3`), they are compared in order;
# - several values against a single reference are right only when each of them is it.

_NOT_MULTIPART = object()
MAX_PARTS = 32
_SEPARATOR = re.compile(r"[()\[\]{}]|[,;]|\b(?:and|or)\b")
_LIST_MARK = re.compile(r"[,;]|\b(?:and|or)\b")
_NAMED = re.compile(
    r"^(?P<name>(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w{1,8}\}?)?(?:\^\{?-1\}?)?(?:\(\s*+[a-z]\s*+\))?)\s*+=\s*+(?P<value>[^=]+)$"
)


def _split_top(text: str) -> list[str]:
    """Parts separated by commas, semicolons, "and", "or" outside every bracket."""
    parts, depth, last = [], 0, 0
    for match in _SEPARATOR.finditer(text):
        token = match.group()
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
        elif depth == 0:
            parts.append(text[last : match.start()])
            last = match.end()
    parts.append(text[last:])
    return [part.strip() for part in parts if part.strip()]


def _encloses(text: str, open_at: int) -> bool:
    """The bracket at open_at is closed by the last character (a bracket of any kind)."""
    depth = 0
    for index in range(open_at, len(text)):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index == len(text) - 1
    return False


def _shape(text: str) -> tuple[str, str, list[str]] | None:
    """(kind, brackets, parts) of a multi-part answer; None for a single value."""
    if text.startswith("\\{") and text.endswith("\\}") and _encloses(text, 1):
        return "set", "{}", _split_top(text[2:-2])
    if len(text) > 1 and text[0] in "([" and text[-1] in ")]" and _encloses(text, 0):
        parts = _split_top(text[1:-1])
        if len(parts) >= 2:
            brackets = text[0] + text[-1]
            return ("tuple" if brackets == "()" else "interval"), brackets, parts
        return None
    parts = _split_top(text)
    return ("list", "", parts) if len(parts) >= 2 else None


# What can stand for several values at once (`\\pm 3`, a vector, a union, a set-builder).
_ONE_VALUE_OF_MANY = re.compile(r"\\(?:pm|mp|begin|cup|in|mid|le|ge|lt|gt|infty)|[<>|:≤≥]|\\\{")


def _names(parts: list[str]) -> list[tuple[str, str]] | None:
    named = [_NAMED.match(part) for part in parts]
    if not all(named):
        return None
    return [(match["name"].replace("{", "").replace("}", ""), match["value"].strip()) for match in named]


def _base(name: str) -> str:
    return name.split("_")[0]


def _part_equal(pred: str, gold: str, full: bool) -> bool | None:
    verdict = math_equal(pred, gold) if full else quick_math_equal(pred, gold)[2]
    return None if verdict is None else verdict[0]


def _match_parts(pred: list[str], gold: list[str], ordered: bool, full: bool) -> tuple[bool, str] | None:
    """Every part equal to its partner; None when a part needs sympy (not `full`)."""
    results = [_part_equal(p, g, full) for p, g in zip(pred, gold, strict=True)]
    if all(results):
        return True, ""
    if ordered:
        if False in results:
            return False, "mismatch: a part differs"
        return None
    # Unordered: each answer part takes an equal reference part not taken yet.
    free = list(range(len(gold)))
    undecided = False
    for p in pred:
        verdicts = [(j, _part_equal(p, gold[j], full)) for j in free]
        taken = next((j for j, verdict in verdicts if verdict), None)
        if taken is not None:
            free.remove(taken)
        elif any(verdict is None for _, verdict in verdicts):
            undecided = True
        else:
            return False, "mismatch: a part is not in the reference"
    return None if undecided else (True, "")


def _structured_equal(pred: str, gold: str, full: bool) -> tuple[bool, str] | None | object:
    """The verdict on multi-part answers, None when undecided without sympy, or
    _NOT_MULTIPART when neither side is one (or the shapes are for math-verify)."""
    if not (_LIST_MARK.search(pred) or _LIST_MARK.search(gold)):
        return _NOT_MULTIPART
    for text in (pred, gold):
        if len(text) > MAX_ANSWER_CHARS or not 0 <= _nesting(text) <= MAX_NESTING:
            return _NOT_MULTIPART
    gold_shape, pred_shape = _shape(gold), _shape(pred)
    if gold_shape is None:
        if pred_shape is None or pred_shape[0] != "list" or len(pred_shape[2]) > MAX_PARTS:
            return _NOT_MULTIPART
        # Several values for one answer: right only when each of them is the reference.
        return _match_parts(pred_shape[2], [gold] * len(pred_shape[2]), True, full)
    if pred_shape is None:
        if gold_shape[0] in ("list", "set") and len(gold_shape[2]) >= 2 and not _ONE_VALUE_OF_MANY.search(pred):
            # One value where the reference lists several: a part is missing.
            return False, f"mismatch: 1 part, the reference has {len(gold_shape[2])}"
        return _NOT_MULTIPART
    (gold_kind, gold_brackets, gold_parts), (pred_kind, pred_brackets, pred_parts) = gold_shape, pred_shape
    if len(gold_parts) > MAX_PARTS or len(pred_parts) > MAX_PARTS:
        return _NOT_MULTIPART
    if (
        gold_kind in ("list", "set")
        and pred_kind in ("tuple", "interval")
        and all(part[0] in "([" and _shape(part) is not None for part in gold_parts)
    ):
        # One pair where the reference lists several pairs.
        return False, f"mismatch: 1 part, the reference has {len(gold_parts)}"
    ordered = gold_kind in ("tuple", "interval")
    if ordered:
        if pred_kind == "set":
            return _NOT_MULTIPART
        if pred_kind == "list" and gold_kind == "interval":
            return False, "mismatch: an interval needs its brackets"
        if pred_kind != "list" and pred_brackets != gold_brackets:
            return False, f"mismatch: {pred_brackets} is not {gold_brackets} (open and closed ends differ)"
    elif pred_kind == "interval":
        return False, "mismatch: an interval is not a set"
    if len(pred_parts) != len(gold_parts):
        return False, f"mismatch: {len(pred_parts)} parts, the reference has {len(gold_parts)}"
    pred_named, gold_named = _names(pred_parts), _names(gold_parts)
    if pred_named and gold_named:
        pred_names, gold_names = [n for n, _ in pred_named], [n for n, _ in gold_named]
        if sorted(pred_names) != sorted(gold_names):
            return False, "mismatch: the parts are named differently"
        if len(set(gold_names)) == len(gold_names):
            by_name = dict(pred_named)
            return _match_parts([by_name[n] for n in gold_names], [v for _, v in gold_named], True, full)
    named = pred_named or gold_named
    if named and len({_base(n) for n, _ in named}) == len(named):
        ordered = True  # x = 2, y = 3: distinct quantities, in the order written
    if pred_named:
        pred_parts = [v for _, v in pred_named]
    if gold_named:
        gold_parts = [v for _, v in gold_named]
    return _match_parts(pred_parts, gold_parts, ordered, full)


_MEMBER = re.compile(r"^(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w{1,8}\}?)?\s*+\\in(?![A-Za-z])\s*+(?P<value>.+)$", re.DOTALL)


def _unname(pred: str, gold: str) -> tuple[str, str]:
    """`x = 3` against `3` (or `3` against `x = 3`) compares the values; so does `y = ...`
    against `y = ...`. Differently named equations are left to math-verify."""
    pred_in, gold_in = _MEMBER.match(pred), _MEMBER.match(gold)
    if pred_in and gold_in is None and "\\in" not in gold:
        return pred_in["value"].strip(), gold  # `x \in [2, 5]` against `[2, 5]`
    if gold_in and pred_in is None and "\\in" not in pred:
        return pred, gold_in["value"].strip()
    pred_named, gold_named = _NAMED.match(pred), _NAMED.match(gold)
    if pred_named and gold_named:
        if pred_named["name"] == gold_named["name"]:
            return pred_named["value"].strip(), gold_named["value"].strip()
        return pred, gold
    if pred_named and "=" not in gold:
        return pred_named["value"].strip(), gold
    if gold_named and "=" not in pred:
        return pred, gold_named["value"].strip()
    return pred, gold


# --- Other spellings of the same object, rewritten before the comparison -----------------

_PLUS_MINUS = re.compile(r"\\(?:pm|mp)(?![A-Za-z])")
_TUPLE_NAMED = re.compile(r"^\((?:[A-Za-z](?:_\{?\w{1,8}\}?)?\s*+,\s*+)+[A-Za-z](?:_\{?\w{1,8}\}?)?\)\s*+=\s*+(?=\()")
_COMPARATOR = re.compile(r"\\(?:le|ge)(?:q(?:slant)?)?(?![A-Za-z])|\\[lg]t(?![A-Za-z])|[<>]=?|≤|≥")
_VARIABLE = re.compile(r"[A-Za-z](?:_\{?\w{1,8}\}?)?")


def _rewrite_pair(pred: str, gold: str) -> tuple[str, str]:
    r"""The forms one side writes and the other does not, as the other writes them:
    `\pm` as its two values, `(x, y) = (3, 2)` as `(3, 2)`, `1 \le x < 5` as `[1, 5)`."""
    if "\\" in pred or "\\" in gold:
        pred_pm, gold_pm = _PLUS_MINUS.search(pred), _PLUS_MINUS.search(gold)
        if pred_pm and not gold_pm:
            pred = _expand_plus_minus(pred)
        elif gold_pm and not pred_pm:
            gold = _expand_plus_minus(gold)
    if "=" in pred or "=" in gold:
        pred, gold = _TUPLE_NAMED.sub("", pred, count=1), _TUPLE_NAMED.sub("", gold, count=1)
    if _COMPARATOR.search(pred) or _COMPARATOR.search(gold):
        pred, gold = _inequality_interval(pred) or pred, _inequality_interval(gold) or gold
    return pred, gold


_CUP = re.compile(r"\\cup(?![A-Za-z])")
_Ends = tuple[Fraction | float, bool, Fraction | float, bool]


def _interval_ends(text: str) -> _Ends | None:
    """(low, low closed, high, high closed) of `[1,2)`, `(-\\infty,3]`; None unless both ends
    are exact numbers or infinities."""
    shape = _shape(text) if len(text) <= 200 else None
    if shape is None or shape[0] not in ("tuple", "interval") or len(shape[2]) != 2:
        return None
    ends: list[Fraction | float] = []
    for part in shape[2]:
        part = part.replace(" ", "")
        if part in ("\\infty", "+\\infty", "-\\infty"):
            ends.append(-math.inf if part[0] == "-" else math.inf)
        elif (number := exact_number(part)) is not None:
            ends.append(number)
        else:
            return None
    return ends[0], shape[1][0] == "[", ends[1], shape[1][1] == "]"


def _union(text: str) -> list[_Ends] | None:
    """A union of intervals with exact ends as its disjoint, sorted, merged pieces."""
    pieces = [_interval_ends(piece.strip()) for piece in _CUP.split(text)] if _nesting(text) >= 0 else [None]
    if not pieces or len(pieces) > MAX_PARTS or any(piece is None for piece in pieces):
        return None
    merged: list[list] = []
    for low, low_closed, high, high_closed in sorted(pieces, key=lambda ends: (ends[0], not ends[1])):
        if low > high or (low == high and not (low_closed and high_closed)):
            continue  # empty
        if merged and (low < merged[-1][2] or (low == merged[-1][2] and (low_closed or merged[-1][3]))):
            last = merged[-1]
            if high > last[2] or (high == last[2] and high_closed):
                last[2], last[3] = high, high_closed or (high == last[2] and last[3])
            continue
        merged.append([low, low_closed, high, high_closed])
    return [tuple(piece) for piece in merged]


def _union_equal(pred: str, gold: str) -> tuple[bool, str] | None:
    """Unions of intervals are sets: compared as their merged pieces, in any order."""
    pred_union, gold_union = _union(pred), _union(gold)
    if pred_union is None or gold_union is None:
        return None
    return (True, "") if pred_union == gold_union else (False, "mismatch: a different set of numbers")


def _expand_plus_minus(text: str) -> str:
    r"""`\frac{-1 \pm i\sqrt{3}}{2}` is the list of its two values (one `\pm` in one value)."""
    signs = _PLUS_MINUS.findall(text)
    if len(signs) != 1 or len(text) > MAX_ANSWER_CHARS or len(_split_top(text)) != 1:
        return text
    first, second = ("+", "-") if signs[0] == "\\pm" else ("-", "+")
    return f"{_PLUS_MINUS.sub(first, text)}, {_PLUS_MINUS.sub(second, text)}"


def _inequality_interval(text: str) -> str | None:
    r"""`1 \le x < 5` -> `[1,5)`, `y \geq 1` -> `[1,\infty)`: an inequality in one variable as
    the interval it describes (open and closed ends kept); None for anything else."""
    if len(text) > 200:
        return None
    ops = list(_COMPARATOR.finditer(text))
    if not 1 <= len(ops) <= 2:
        return None
    bounds = [0, *(i for op in ops for i in op.span()), len(text)]
    pieces = [text[bounds[i] : bounds[i + 1]].strip() for i in range(0, len(bounds), 2)]
    less = [op.group().startswith(("<", "≤", "\\l")) for op in ops]
    strict = [op.group() in ("<", ">", "\\lt", "\\gt") for op in ops]
    if not all(pieces) or len(set(less)) != 1:
        return None
    if len(ops) == 2:
        if not _VARIABLE.fullmatch(pieces[1]) or _VARIABLE.fullmatch(pieces[0]) or _VARIABLE.fullmatch(pieces[2]):
            return None
        low, high = (pieces[0], pieces[2]) if less[0] else (pieces[2], pieces[0])
        low_open, high_open = (strict[0], strict[1]) if less[0] else (strict[1], strict[0])
    else:
        left_variable, right_variable = _VARIABLE.fullmatch(pieces[0]), _VARIABLE.fullmatch(pieces[1])
        if bool(left_variable) == bool(right_variable):
            return None
        bound = pieces[1] if left_variable else pieces[0]
        # x < b and b > x bound x from above.
        upper = less[0] == bool(left_variable)
        low, high = ("-\\infty", bound) if upper else (bound, "\\infty")
        low_open, high_open = (True, strict[0]) if upper else (strict[0], True)
    return f"{'(' if low_open else '['}{low},{high}{')' if high_open else ']'}"


_MATRIX = re.compile(r"^\\begin\{(?P<env>[pbBvV]?matrix)\}(?P<body>.*)\\end\{(?P=env)\}$", re.DOTALL)


def _matrix_rows(text: str) -> tuple[str, list[list[str]]] | None:
    r"""("matrix" or "det", rows of cells); a number before the matrix (`\frac14\begin{pmatrix}`)
    multiplies every cell."""
    begin = text.find("\\begin")
    scalar = text[:begin].strip().rstrip("*").removesuffix("\\cdot").strip() if begin > 0 else ""
    if scalar and (len(scalar) > 40 or exact_number(scalar) is None):
        return None
    match = _MATRIX.match(text[begin:]) if begin >= 0 else None
    if match is None or "\\begin" in match["body"]:
        return None
    rows = [row for row in match["body"].split("\\\\") if row.strip()]
    cells = [[cell.strip() for cell in row.split("&")] for row in rows]
    if scalar:
        cells = [[f"{scalar} \\cdot ({cell})" for cell in row] for row in cells]
    return ("det" if match["env"][0] in "vV" else "matrix"), cells


def _matrix_equal(pred: str, gold: str, full: bool) -> tuple[bool, str] | None | object:
    """pmatrix/bmatrix/matrix of the same size: entries compared one by one (a vmatrix is a
    determinant, left to math-verify). A one-column or one-row matrix is the tuple of its entries."""
    if ("\\begin" in pred) != ("\\begin" in gold):
        return _vector_equal(pred, gold, full)
    if "\\begin" not in pred:
        return _NOT_MULTIPART
    pred_rows, gold_rows = _matrix_rows(pred), _matrix_rows(gold)
    if pred_rows is None or gold_rows is None or "det" in (pred_rows[0], gold_rows[0]):
        return _NOT_MULTIPART
    pred_cells, gold_cells = pred_rows[1], gold_rows[1]
    if [len(row) for row in pred_cells] != [len(row) for row in gold_cells]:
        return False, "mismatch: matrices of different sizes"
    flat_pred = [cell for row in pred_cells for cell in row]
    flat_gold = [cell for row in gold_cells for cell in row]
    if len(flat_pred) > MAX_PARTS * MAX_PARTS:
        return _NOT_MULTIPART
    return _match_parts(flat_pred, flat_gold, True, full)


def _vector_equal(pred: str, gold: str, full: bool) -> tuple[bool, str] | None | object:
    """A column (or row) vector against a tuple `(3, -1)`: entries in order."""
    matrix, other = (pred, gold) if "\\begin" in pred else (gold, pred)
    rows = _matrix_rows(matrix)
    shape = _shape(other) if len(other) <= MAX_ANSWER_CHARS and 0 <= _nesting(other) <= MAX_NESTING else None
    if rows is None or rows[0] == "det" or shape is None or shape[0] != "tuple":
        return _NOT_MULTIPART
    cells = rows[1]
    if len(cells) != 1 and any(len(row) != 1 for row in cells):
        return _NOT_MULTIPART  # a matrix, not a vector
    entries = [cell for row in cells for cell in row]
    if len(entries) != len(shape[2]):
        return False, f"mismatch: {len(shape[2])} entries, the vector has {len(entries)}"
    if len(entries) > MAX_PARTS:
        return _NOT_MULTIPART
    vector_parts, tuple_parts = (entries, shape[2]) if matrix is pred else (shape[2], entries)
    return _match_parts(vector_parts, tuple_parts, True, full)


def warm_up() -> None:
    """Build math-verify's LaTeX parser and sympy's caches once (about a second), before workers
    fork. Called on sympy directly: the quick path now decides the simple pairs without it."""
    _sympy_equal("\\sin^2 x+\\frac{1}{2}", "\\sqrt{2}")
    _sympy_equal("\\sqrt{n^2}", "n")
