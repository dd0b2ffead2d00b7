"""Synthetic problems where a Python tool helps, for the micro model and the embedded demo.

Each family is easy to state and to check but hard to compute "in the head" for a
model of a few million parameters (long multiplication, modular powers, counting
primes...), so greedy decoding mostly guesses wrong while one line of Python gets it
right: the gap that START's hint-infer step exploits. The micro model's corpus
(`training.micro.corpus`), the committed demo and eval sets (`data/micro/*.jsonl`) and
the platform's local runs all draw from here.

A problem belongs to the train or the test split by a hash of its family and numbers,
so the two splits never share a problem whatever seed or count is asked for.

The base model of the micro recipe (`training.micro.base_corpus`) needs more than the
shipped model's draws, which stay as they were: easy problems it can get right in its
head (a product by a power of ten, a first power, a gcd where one number divides the
other, a range of one integer), more question wordings to train on, and wordings it never
sees, held out for evaluation (`make_problems(..., wordings=..., easy_share=...)`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BOXED = " Put the final answer in \\boxed{}."
TEST_FRACTION = 5  # one problem in TEST_FRACTION (by hash) is a test problem
MAX_MISSES = 10_000  # draws in a row that give no new problem before a family counts as used up


@dataclass(frozen=True)
class Problem:
    id: str
    kind: str
    question: str
    reference: str
    # The numbers the question is built from, in the order the family's code uses them.
    args: tuple[int, ...]
    # Drawn from the family's easy draws: a rule gives the answer without a tool.
    easy: bool = False

    def to_record(self) -> dict[str, str]:
        """The platform's problem-file line: id, question, reference, task_type."""
        return {"id": self.id, "question": self.question, "reference": self.reference, "task_type": "math"}


def count_primes_below(n: int) -> int:
    """Sieve of Eratosthenes; n >= 2."""
    sieve = bytearray([1]) * n
    sieve[:2] = b"\0\0"
    for p in range(2, math.isqrt(n) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, n, p)))
    return sum(sieve)


@dataclass(frozen=True)
class Family:
    """How to draw, ask and solve one kind of problem."""

    kind: str
    draw: Callable[[random.Random], tuple[int, ...]]
    questions: tuple[str, ...]  # phrasings, formatted with the args as {0}, {1}, ...
    solve: Callable[..., int]
    # The base model's: more wordings to train on, wordings only evaluation asks in, and
    # problems whose answer a rule gives (None: the family has none).
    more_questions: tuple[str, ...] = ()
    held_out_questions: tuple[str, ...] = ()
    draw_easy: Callable[[random.Random], tuple[int, ...]] | None = None


def _draw_gcd(rng: random.Random) -> tuple[int, int]:
    # A shared factor of 2-3 digits, so the answer is rarely 1 and never obvious.
    g = rng.randint(12, 999)
    return g * rng.randint(11, 997), g * rng.randint(11, 997)


def _draw_range(rng: random.Random) -> tuple[int, int]:
    a = rng.randint(10, 999)
    return a, a + rng.randint(100, 9000)


def _draw_easy_gcd(rng: random.Random) -> tuple[int, int]:
    a = rng.randint(12, 9999)
    return a, a * rng.randint(2, 99)


def _draw_easy_range(rng: random.Random) -> tuple[int, int]:
    a = rng.randint(10, 9999)
    return a, a


FAMILIES: tuple[Family, ...] = (
    Family(
        "multiply",
        lambda rng: (rng.randint(100, 9999), rng.randint(1000, 9999)),
        ("What is {0} * {1}?", "Compute the product of {0} and {1}."),
        lambda a, b: a * b,
        more_questions=(
            "Multiply {0} by {1}.",
            "What do you get when you multiply {0} and {1}?",
            "Find {0} times {1}.",
        ),
        held_out_questions=("Calculate {0} multiplied by {1}.", "What number is {0} times {1}?"),
        draw_easy=lambda rng: (rng.randint(100, 9999), 10 ** rng.randint(1, 3)),
    ),
    Family(
        "powmod",
        lambda rng: (rng.randint(2, 999), rng.randint(10, 999), rng.randint(100, 9999)),
        ("What is {0}^{1} mod {2}?", "Find the remainder when {0}^{1} is divided by {2}."),
        lambda a, b, m: pow(a, b, m),
        more_questions=(
            "Compute {0}^{1} modulo {2}.",
            "What remainder does {0}^{1} leave when divided by {2}?",
            "Find {0} to the power {1}, modulo {2}.",
        ),
        held_out_questions=("Evaluate {0}^{1} mod {2}.", "Reduce {0}^{1} modulo {2}: what is the result?"),
        draw_easy=lambda rng: (a := rng.randint(2, 999), 1, rng.randint(a + 1, 9999)),
    ),
    Family(
        "primes",
        lambda rng: (rng.randint(100, 5000),),
        ("How many primes are there below {0}?", "Count the prime numbers less than {0}."),
        count_primes_below,
        more_questions=(
            "How many prime numbers are smaller than {0}?",
            "Find the number of primes less than {0}.",
            "Count the primes below {0}.",
        ),
        held_out_questions=("How many primes lie under {0}?", "What is the count of prime numbers below {0}?"),
    ),
    Family(
        "digitsum",
        lambda rng: (rng.randint(20, 3000),),
        ("What is the sum of the digits of 2^{0}?", "Find the digit sum of 2^{0}."),
        lambda k: sum(int(c) for c in str(2**k)),
        more_questions=(
            "Add up the digits of 2^{0}.",
            "What do the digits of 2^{0} sum to?",
            "Compute the sum of the decimal digits of 2^{0}.",
        ),
        held_out_questions=("What is the digit sum of 2^{0}?", "Sum the digits of the number 2^{0}."),
    ),
    Family(
        "gcd",
        _draw_gcd,
        ("What is the greatest common divisor of {0} and {1}?", "Find gcd({0}, {1})."),
        math.gcd,
        more_questions=(
            "Compute the gcd of {0} and {1}.",
            "What is the largest number that divides both {0} and {1}?",
            "Find the greatest common factor of {0} and {1}.",
        ),
        held_out_questions=("What is gcd({0}, {1})?", "Determine the greatest common divisor of {0} and {1}."),
        draw_easy=_draw_easy_gcd,
    ),
    Family(
        "rangesum",
        _draw_range,
        ("What is the sum of all integers from {0} to {1}?", "Add up every integer from {0} to {1} inclusive."),
        lambda a, b: (a + b) * (b - a + 1) // 2,
        more_questions=(
            "Compute the sum of the integers from {0} through {1}.",
            "What is {0} + ... + {1}, every integer in between included?",
            "Find the total of all whole numbers from {0} to {1}.",
        ),
        held_out_questions=(
            "Sum every integer between {0} and {1}, both included.",
            "What do the integers from {0} to {1} add up to?",
        ),
        draw_easy=_draw_easy_range,
    ),
)
KINDS: tuple[str, ...] = tuple(f.kind for f in FAMILIES)


def _key(kind: str, args: tuple[int, ...]) -> str:
    return hashlib.sha256(f"{kind}:{','.join(map(str, args))}".encode()).hexdigest()


def split_of(kind: str, args: tuple[int, ...]) -> str:
    """'test' or 'train', fixed by the problem itself (not by the seed that drew it)."""
    return "test" if int(_key(kind, args)[:8], 16) % TEST_FRACTION == 0 else "train"


WORDINGS = ("shipped", "varied", "held-out")


def _wordings(family: Family, wordings: str) -> tuple[str, ...]:
    """shipped: the shipped model's two; varied: those and the base model's other
    training wordings; held-out: wordings no training corpus uses."""
    if wordings == "shipped":
        return family.questions
    if wordings == "varied":
        return family.questions + family.more_questions
    return family.held_out_questions


def make_problems(
    n: int, seed: int, split: str = "test", wordings: str = "shipped", easy_share: float = 0.0
) -> list[Problem]:
    """`n` distinct problems of `split`, cycling through the families; deterministic in `seed`.
    `easy_share`: the chance that a family with easy draws gives an easy problem. The
    defaults draw exactly the shipped model's problems."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if wordings not in WORDINGS:
        raise ValueError(f"wordings must be one of {WORDINGS}, not {wordings!r}")
    rng = random.Random(seed)
    seen: set[str] = set()
    problems: list[Problem] = []
    misses = 0
    while len(problems) < n:
        family = FAMILIES[len(problems) % len(FAMILIES)]
        # No draw for easiness unless asked: the shipped draws stay what they were.
        easy = easy_share > 0 and family.draw_easy is not None and rng.random() < easy_share
        args = family.draw_easy(rng) if easy else family.draw(rng)
        phrasing = rng.choice(_wordings(family, wordings))
        key = _key(family.kind, args)
        if key in seen or split_of(family.kind, args) != split:
            misses += 1
            if misses > MAX_MISSES:
                raise ValueError(f"the {family.kind} family has too few distinct {split} problems for n={n}")
            continue
        misses = 0
        seen.add(key)
        problems.append(
            Problem(
                id=f"{family.kind}-{key[:10]}",
                kind=family.kind,
                question=phrasing.format(*args) + BOXED,
                reference=str(family.solve(*args)),
                args=args,
                easy=easy,
            )
        )
    return problems


def write_jsonl(problems: list[Problem], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for p in problems:
            f.write(json.dumps(p.to_record()) + "\n")
