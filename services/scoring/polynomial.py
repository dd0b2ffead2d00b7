"""Polynomials expanded exactly: the grader's quick path for algebra a person does at once.

`(x+1)^2` against `x^2 + 2x + 1`, `y = 3 + 2x` against `y = 2x + 3`, `\\frac{1}{\\sqrt2}`
against `\\frac{\\sqrt2}{2}`, `\\frac{1+i}{1-i}` against `i`, `\\frac{3\\pi}{4}` against
`\\frac34\\pi`: decided here in microseconds, without sympy (services/scoring/math_equiv.py
calls `polynomial_equal` before handing a pair to math-verify).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

# A plain decimal number (also math_equiv's): an approximation when the other side is irrational.
DECIMAL = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)$")

# `(x+1)^2` against `x^2 + 2x + 1`, `y = 3 + 2x` against `y = 2x + 3`, `\frac{1}{\sqrt2}`
# against `\frac{\sqrt2}{2}`, `\frac{1+i}{1-i}` against `i`, `\frac{3\pi}{4}` against
# `\frac34\pi`: sums of products of rationals, letter variables, pi, i and square roots of
# rationals are expanded into {monomial: coefficient} and compared exactly, without sympy.
# A monomial is (variable powers, square-free radicand, power of i); pi counts as a variable
# (it is transcendental, so that is exact). Anything else (another command, e, a division by
# a variable, a big expansion) is None: sympy's.

_Monomial = tuple[tuple[tuple[str, int], ...], int, int]
_Polynomial = dict[_Monomial, Fraction]
_ONE: _Monomial = ((), 1, 0)
_POLY_TOKEN = re.compile(
    r"\s*+(?:(\d++(?:\.\d++)?)|([A-Za-z])|(\\(?:frac|cdot|times|sqrt|pi))(?![A-Za-z])|([-+*/^(){}=]))"
)
_MAX_POLY_TERMS = 200
_MAX_POLY_DEGREE = 12
_MAX_RADICAND = 10**8


class _NotPolynomial(Exception):
    pass


def _poly_tokens(text: str) -> list[tuple[str, str]] | None:
    tokens, at = [], 0
    while at < len(text):
        match = _POLY_TOKEN.match(text, at)
        if match is None:
            if text[at:].strip():
                return None
            break
        number, letter, command, symbol = match.groups()
        kind = "number" if number else "letter" if letter else "command" if command else "symbol"
        tokens.append((kind, match.group().strip()))
        at = match.end()
    return tokens


def _poly_add(a: _Polynomial, b: _Polynomial, sign: int = 1) -> _Polynomial:
    result = dict(a)
    for monomial, coefficient in b.items():
        value = result.get(monomial, Fraction(0)) + sign * coefficient
        if value:
            result[monomial] = value
        else:
            result.pop(monomial, None)
    return result


def _monomial_product(a: _Monomial, b: _Monomial) -> tuple[_Monomial, int]:
    powers = dict(a[0])
    for name, power in b[0]:
        powers[name] = powers.get(name, 0) + power
    if sum(powers.values()) > _MAX_POLY_DEGREE:
        raise _NotPolynomial
    # sqrt(r1) sqrt(r2) = g sqrt(r1 r2 / g^2) for square-free r1, r2 with g = gcd(r1, r2).
    common = math.gcd(a[1], b[1])
    radicand = (a[1] // common) * (b[1] // common)
    if radicand > _MAX_RADICAND:
        raise _NotPolynomial
    imaginary = a[2] + b[2]
    factor = common * (-1 if imaginary == 2 else 1)
    return (tuple(sorted(powers.items())), radicand, imaginary % 2), factor


def _poly_multiply(a: _Polynomial, b: _Polynomial) -> _Polynomial:
    if len(a) * len(b) > _MAX_POLY_TERMS * 4:
        raise _NotPolynomial
    result: _Polynomial = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            monomial, factor = _monomial_product(ma, mb)
            result = _poly_add(result, {monomial: ca * cb * factor})
    if len(result) > _MAX_POLY_TERMS:
        raise _NotPolynomial
    return result


def _poly_inverse(poly: _Polynomial) -> _Polynomial:
    """1/p for a number p: c sqrt(r) i^k, or a + bi with rational a, b; else not a polynomial."""
    if not poly or any(monomial[0] for monomial in poly):
        raise _NotPolynomial
    if len(poly) == 1:
        (((_, radicand, imaginary), coefficient),) = poly.items()
        # 1/(c sqrt(r) i^k) = sqrt(r) / (c r) * (-i)^k
        return {((), radicand, imaginary): (-1 if imaginary else 1) / (coefficient * radicand)}
    if all(monomial[1] == 1 for monomial in poly):
        real, imaginary = poly.get(((), 1, 0), Fraction(0)), poly.get(((), 1, 1), Fraction(0))
        norm = real * real + imaginary * imaginary
        return _poly_add({((), 1, 0): real / norm}, {((), 1, 1): imaginary / norm}, -1)
    raise _NotPolynomial


def _square_root(value: Fraction) -> _Polynomial:
    """sqrt of a rational: s sqrt(r) with r square-free (i for a negative one)."""
    imaginary = 1 if value < 0 else 0
    value = abs(value)
    # sqrt(a/b) = sqrt(a b) / b
    radicand, outside = value.numerator * value.denominator, Fraction(1, value.denominator)
    if radicand > _MAX_RADICAND:
        raise _NotPolynomial
    if radicand == 0:
        return {}
    factor = 2
    while factor * factor <= radicand:
        while radicand % (factor * factor) == 0:
            radicand //= factor * factor
            outside *= factor
        factor += 1
    return {((), radicand, imaginary): outside}


def _constant(poly: _Polynomial) -> Fraction | None:
    """The rational value of a constant polynomial, else None."""
    if not poly:
        return Fraction(0)
    return poly.get(_ONE) if len(poly) == 1 else None


class _PolyParser:
    """expr := ['+'|'-'] term (('+'|'-') term)*; term := power ((op)? power)*;
    power := atom ['^' exponent]; atom := number | letter | \\pi | (expr) | {expr}
    | \\frac{expr}{number} | \\sqrt{rational}."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, value: str) -> None:
        if self.peek() is None or self.peek()[1] != value:
            raise _NotPolynomial
        self.at += 1

    def expression(self) -> _Polynomial:
        sign = 1
        if self.peek() is not None and self.peek()[1] in "+-":
            sign = -1 if self.peek()[1] == "-" else 1
            self.at += 1
        result = _poly_add({}, self.term(), sign)
        while self.peek() is not None and self.peek()[1] in ("+", "-"):
            sign = -1 if self.peek()[1] == "-" else 1
            self.at += 1
            result = _poly_add(result, self.term(), sign)
        return result

    def term(self) -> _Polynomial:
        result, previous = self.power(), self.tokens[self.at - 1]
        while (token := self.peek()) is not None:
            if token[1] in ("*", "\\cdot", "\\times"):
                self.at += 1
                result = _poly_multiply(result, self.power())
            elif token[1] == "/":
                self.at += 1
                kind, value = self.peek() or ("", "")
                self.at += 1
                after = self.peek()
                if kind != "number" or (after is not None and after[1] not in ("+", "-", ")", "}", "=")):
                    raise _NotPolynomial  # `1/2x`: ambiguous; `x/y`: not a polynomial
                result = _poly_multiply(result, _poly_inverse({_ONE: Fraction(Decimal(value))}))
            elif token[0] in ("letter", "command") or token[1] in ("(", "{") or token[0] == "number":
                if previous[0] == "number" and (token[0] == "number" or token[1] == "\\frac"):
                    raise _NotPolynomial  # `2 3`, and `2\frac{1}{3}` is a mixed number
                result = _poly_multiply(result, self.power())  # implicit product: 2x, x(x+1)
            else:
                break
            previous = self.tokens[self.at - 1]
        return result

    def power(self) -> _Polynomial:
        base = self.atom()
        if self.peek() is None or self.peek()[1] != "^":
            return base
        self.at += 1
        kind, value = self.peek() or ("", "")
        if kind == "number" and len(value) == 1:
            self.at += 1
            exponent = int(value)
        elif value == "{":
            self.at += 1
            exponent_value = _constant(self.expression())
            self.take("}")
            if exponent_value is None or exponent_value.denominator != 1:
                raise _NotPolynomial
            exponent = int(exponent_value)
        else:
            raise _NotPolynomial
        if abs(exponent) > _MAX_POLY_DEGREE:
            raise _NotPolynomial
        if exponent < 0:
            base, exponent = _poly_inverse(base), -exponent
        result: _Polynomial = {_ONE: Fraction(1)}
        for _ in range(exponent):
            result = _poly_multiply(result, base)
        return result

    def braced(self) -> _Polynomial:
        self.take("{")
        inner = self.expression()
        self.take("}")
        return inner

    def exponential(self) -> _Polynomial:
        """`e^{i\\pi/3}`: e to i times a multiple of pi/12, exactly (any other e is sympy's)."""
        self.take("^")
        exponent = self.braced()
        angle = exponent.get(((("\\pi", 1),), 1, 1)) if len(exponent) == 1 else None
        if angle is None or (angle * 12).denominator != 1:
            raise _NotPolynomial
        twelfths = int(angle * 12) % 24
        sine = _poly_multiply({((), 1, 1): Fraction(1)}, _cos_twelfths(6 - twelfths))
        return _poly_add(_cos_twelfths(twelfths), sine)

    def atom(self) -> _Polynomial:
        token = self.peek()
        if token is None:
            raise _NotPolynomial
        kind, value = token
        self.at += 1
        if kind == "number":
            number = Fraction(Decimal(value))
            return {_ONE: number} if number else {}
        if value == "e":
            return self.exponential()
        if kind == "letter":
            return {((), 1, 1): Fraction(1)} if value == "i" else {(((value, 1),), 1, 0): Fraction(1)}
        if value == "\\pi":
            return {((("\\pi", 1),), 1, 0): Fraction(1)}
        if value in ("(", "{"):
            inner = self.expression()
            self.take(")" if value == "(" else "}")
            return inner
        if value == "\\frac":
            numerator = self.braced()
            return _poly_multiply(numerator, _poly_inverse(self.braced()))
        if value == "\\sqrt":
            following = self.peek()
            if following is not None and following[0] == "number" and len(following[1]) == 1:
                self.at += 1
                radicand = Fraction(int(following[1]))
            else:
                radicand = _constant(self.braced())
            if radicand is None:
                raise _NotPolynomial
            return _square_root(radicand)
        raise _NotPolynomial


def _cos_twelfths(k: int) -> _Polynomial:
    """cos(k pi / 12), exactly: in Q(sqrt 2, sqrt 3)."""
    k %= 24
    if k > 12:
        k = 24 - k
    if k > 6:
        return {monomial: -c for monomial, c in _cos_twelfths(12 - k).items()}
    half, quarter = Fraction(1, 2), Fraction(1, 4)
    table: dict[int, _Polynomial] = {
        0: {_ONE: Fraction(1)},
        1: {((), 6, 0): quarter, ((), 2, 0): quarter},
        2: {((), 3, 0): half},
        3: {((), 2, 0): half},
        4: {_ONE: half},
        5: {((), 6, 0): quarter, ((), 2, 0): -quarter},
        6: {},
    }
    return table[k]


def _polynomial(text: str) -> tuple[_Polynomial, bool] | None:
    """(lhs - rhs or the expression, whether it is an equation), or None when not a polynomial."""
    if len(text) > 300 or text.count("=") > 1:
        return None
    tokens = _poly_tokens(text)
    if not tokens:
        return None
    parser = _PolyParser(tokens)
    try:
        value = parser.expression()
        if parser.peek() is not None and parser.peek()[1] == "=":
            parser.at += 1
            value = _poly_add(value, parser.expression(), -1)
            if parser.peek() is not None:
                return None
            return value, True
        return (value, False) if parser.peek() is None else None
    except (_NotPolynomial, InvalidOperation, ZeroDivisionError, RecursionError):
        return None


def polynomial_equal(pred: str, gold: str) -> tuple[bool, str] | None:
    """Equal polynomials, or equations with proportional sides (the same line or conic)."""
    if ("=" in pred) != ("=" in gold):
        return None
    pred_poly = _polynomial(pred)
    gold_poly = _polynomial(gold) if pred_poly is not None else None
    if pred_poly is None or gold_poly is None:
        return None
    (p, pred_equation), (g, _) = pred_poly, gold_poly
    if not pred_equation:
        if p == g:
            return True, ""
        if DECIMAL.match(pred) and "." in pred and any(monomial != _ONE for monomial in g):
            return False, "mismatch: an approximation is not the exact value"
        return False, "mismatch"
    if not p or not g:
        return None  # 0 = 0: left to sympy
    if p.keys() == g.keys():
        ratio = next(iter(p.values())) / g[next(iter(p))]
        if all(c == ratio * g[m] for m, c in p.items()):
            return True, ""
    degree = max(sum(power for _, power in monomial[0]) for monomial in (*p, *g))
    # Two lines, or two conics, with sides that are not proportional are different curves.
    return (False, "mismatch: a different equation") if degree <= 2 else None


