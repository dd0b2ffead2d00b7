"""Synthetic problems where a Python tool helps, for the micro model and the embedded demo.

Each family is easy to state and to check but hard to compute "in the head" for a
model of a few million parameters (long multiplication, modular powers, counting
primes...), so greedy decoding mostly guesses wrong while one line of Python gets it
right: the gap that START's hint-infer step exploits. The micro model's corpus
(`training.micro.corpus`), the committed demo and eval sets (`data/micro/*.jsonl`) and
the platform's local runs all draw from here.

A problem belongs to the train or the test split by a hash of its family and numbers,
so the two splits never share a problem whatever seed or count is asked for.
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


def _draw_gcd(rng: random.Random) -> tuple[int, int]:
    # A shared factor of 2-3 digits, so the answer is rarely 1 and never obvious.
    g = rng.randint(12, 999)
    return g * rng.randint(11, 997), g * rng.randint(11, 997)


def _draw_range(rng: random.Random) -> tuple[int, int]:
    a = rng.randint(10, 999)
    return a, a + rng.randint(100, 9000)


FAMILIES: tuple[Family, ...] = (
    Family(
        "multiply",
        lambda rng: (rng.randint(100, 9999), rng.randint(1000, 9999)),
        ("What is {0} * {1}?", "Compute the product of {0} and {1}."),
        lambda a, b: a * b,
    ),
    Family(
        "powmod",
        lambda rng: (rng.randint(2, 999), rng.randint(10, 999), rng.randint(100, 9999)),
        ("What is {0}^{1} mod {2}?", "Find the remainder when {0}^{1} is divided by {2}."),
        lambda a, b, m: pow(a, b, m),
    ),
    Family(
        "primes",
        lambda rng: (rng.randint(100, 5000),),
        ("How many primes are there below {0}?", "Count the prime numbers less than {0}."),
        count_primes_below,
    ),
    Family(
        "digitsum",
        lambda rng: (rng.randint(20, 3000),),
        ("What is the sum of the digits of 2^{0}?", "Find the digit sum of 2^{0}."),
        lambda k: sum(int(c) for c in str(2**k)),
    ),
    Family(
        "gcd",
        _draw_gcd,
        ("What is the greatest common divisor of {0} and {1}?", "Find gcd({0}, {1})."),
        math.gcd,
    ),
    Family(
        "rangesum",
        _draw_range,
        ("What is the sum of all integers from {0} to {1}?", "Add up every integer from {0} to {1} inclusive."),
        lambda a, b: (a + b) * (b - a + 1) // 2,
    ),
)
KINDS: tuple[str, ...] = tuple(f.kind for f in FAMILIES)


def _key(kind: str, args: tuple[int, ...]) -> str:
    return hashlib.sha256(f"{kind}:{','.join(map(str, args))}".encode()).hexdigest()


def split_of(kind: str, args: tuple[int, ...]) -> str:
    """'test' or 'train', fixed by the problem itself (not by the seed that drew it)."""
    return "test" if int(_key(kind, args)[:8], 16) % TEST_FRACTION == 0 else "train"


def make_problems(n: int, seed: int, split: str = "test") -> list[Problem]:
    """`n` distinct problems of `split`, cycling through the families; deterministic in `seed`."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    rng = random.Random(seed)
    seen: set[str] = set()
    problems: list[Problem] = []
    misses = 0
    while len(problems) < n:
        family = FAMILIES[len(problems) % len(FAMILIES)]
        args = family.draw(rng)
        phrasing = rng.choice(family.questions)
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
            )
        )
    return problems


def write_jsonl(problems: list[Problem], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for p in problems:
            f.write(json.dumps(p.to_record()) + "\n")
