"""Text formats and the training corpus of the micro model (the "base model" of the demo).

The micro model stands in for a long chain-of-thought model such as QwQ: it thinks in
words inside `<think>...</think>`, reflects with "Wait," / "Alternatively," and, having
no way to compute, guesses a plausible but wrong number. It has also seen, with no loss
on them, hints that open a python block and tool outputs, so that it follows a hint by
writing short correct code and copies a tool's output into its answer, but never writes
a hint or a tool call on its own. That is what lets the START recipe show its effect on
it: greedy decoding fails, hint-infer succeeds.

The think markers, the fences and the output block are the platform's text contract
(`services.common.text_contract`), imported, never copied: what the model learns here is
what the services give it back. The chat template and the hint sentences are the micro
model's own. `training.micro.build` trains on `make_corpus` and `training.micro.evaluate`
replays hint-infer with the same strings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from services.common.text_contract import CLOSING_FENCE, END_THINK, PYTHON_FENCE, START_THINK, format_tool_output
from training.micro.problems import Problem

IM_START, IM_END, EOS = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# Qwen-style; the assistant turn opens its thinking block right away.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n" + START_THINK + "\\n' }}{%- endif %}"
)

# The paper's math hints and rewordings of its categories (reflection, logic check,
# alternative method, complex calculation, tool use, deeper thinking). Each is followed
# by `hint_suffix`, which opens the python block the model then fills.
HINTS: tuple[str, ...] = (
    "Wait, I can use Python to check if my approach is correct and refine it, if necessary.",
    "Wait, I need to utilize Python code again to meticulously check to make sure I understand "
    "the question correctly as well as reasoning correctly.",
    "Wait, I can think more deeply about this problem through python tools.",
    "Wait, maybe I made a mistake. Let me verify my reasoning with Python code.",
    "Wait, let me check the logic of each step by running some Python code.",
    "Wait, there may be a simpler method. Let me try a different approach with Python.",
    "Wait, this calculation is error prone. I should compute it exactly with Python.",
    "Wait, I should let Python do the heavy arithmetic here.",
    "Wait, let me use a Python tool to be sure about the exact value.",
    "Wait, before I answer, I will double-check the computation in Python.",
)


def hint_suffix(rng: random.Random) -> str:
    """What follows a hint sentence: a new line and an open python block, or (as the
    paper prints its hints) the block glued to the sentence."""
    return f"\n{PYTHON_FENCE}\n" if rng.random() < 0.8 else f"{PYTHON_FENCE}\n"


def chat_prompt(question: str) -> str:
    """The text `tokenizer.apply_chat_template(..., add_generation_prompt=True)` gives."""
    return f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n{START_THINK}\n"


def solution_code(problem: Problem) -> str:
    """The short program the model learns to write after a hint; it prints the answer."""
    a = problem.args
    match problem.kind:
        case "multiply":
            code = f"print({a[0]} * {a[1]})"
        case "powmod":
            code = f"print(pow({a[0]}, {a[1]}, {a[2]}))"
        case "primes":
            code = f"n = {a[0]}\nprint(sum(all(k % d for d in range(2, int(k**0.5) + 1)) for k in range(2, n)))"
        case "digitsum":
            code = f"print(sum(int(c) for c in str(2**{a[0]})))"
        case "gcd":
            code = f"import math\nprint(math.gcd({a[0]}, {a[1]}))"
        case "rangesum":
            code = f"print(sum(range({a[0]}, {a[1]} + 1)))"
        case _:
            raise ValueError(f"unknown problem kind {problem.kind!r}")
    return code + "\n"


@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool  # False: in the context but no loss (prompt, hints, tool outputs)


def _garble(value: int, rng: random.Random) -> int:
    """Right leading digits, wrong tail: what a model that cannot multiply writes."""
    s = str(value)
    keep = max(1, len(s) // 2)
    return int(s[:keep] + "".join(rng.choice("0123456789") for _ in s[keep:]))


def wrong_guess(problem: Problem, rng: random.Random) -> int:
    ref, a = int(problem.reference), problem.args
    match problem.kind:
        case "powmod":
            guess = rng.randrange(a[2])
        case "primes":
            guess = round(a[0] / math.log(a[0]) * rng.uniform(1.02, 1.2))
        case "digitsum":
            guess = round(4.5 * len(str(2 ** a[0]))) + rng.randint(-20, 20)
        case "gcd":
            guess = rng.choice([d for d in range(2, min(ref, 100)) if ref % d == 0] or [1])
        case _:
            guess = _garble(ref, rng)
    return guess if guess != ref else ref + 1


def _reflect(rng: random.Random, wait: str, alternatively: str) -> str:
    """Mostly "Wait", the reflection word the demo stops at; sometimes "Alternatively"."""
    return wait if rng.random() < 0.75 else alternatively


def _magnitude(value: int) -> str:
    """A rough size in words, with few digits: a model can guess it, and it is not a near
    copy of the question's numbers that would blur the model's copying of them."""
    return f"{round(value / 1e6)} million" if value >= 1e6 else f"{round(value / 1e3)} thousand"


def reasoning_in_words(problem: Problem, rng: random.Random) -> tuple[str, str, str]:
    """(opening paragraph, reflection paragraph, how the guess was reached) in words."""
    a = problem.args
    match problem.kind:
        case "multiply":
            size = _magnitude(a[0] * a[1])
            opening = rng.choice(
                [
                    f"We need to multiply {a[0]} by {a[1]}. Rounding both factors, the product is about {size}.",
                    f"The question asks for {a[0]} * {a[1]}. A rough estimate of the product is {size}.",
                ]
            )
            reflection = _reflect(
                rng,
                "Wait, rounding changes the last digits, so the exact product is a bit different.",
                "Alternatively, I can split the second factor into hundreds and units and add the partial products.",
            )
            guess_intro = "Doing the partial products in my head"
        case "powmod":
            opening = rng.choice(
                [
                    f"We need {a[0]}^{a[1]} mod {a[2]}. The exponent is large, so I use repeated squaring "
                    "and reduce after every step.",
                    f"To find {a[0]}^{a[1]} mod {a[2]}, I square repeatedly and keep only the remainders.",
                ]
            )
            reflection = _reflect(
                rng,
                "Wait, there are many squarings left, and each one is easy to get wrong.",
                "Alternatively, I could look for a cycle in the powers, but it may be long.",
            )
            guess_intro = "Continuing the squarings"
        case "primes":
            est = round(a[0] / math.log(a[0]))
            opening = rng.choice(
                [
                    f"We need the number of primes below {a[0]}. By the prime number theorem there are "
                    f"roughly {est} of them.",
                    f"Counting primes less than {a[0]} by hand is long. A first estimate from n / ln(n) is {est}.",
                ]
            )
            reflection = _reflect(
                rng,
                "Wait, that estimate is usually too low for small numbers, so I adjust it upward.",
                "Alternatively, I could sieve, but there are too many numbers to do it by hand.",
            )
            guess_intro = "Adjusting the estimate"
        case "digitsum":
            digits = len(str(2 ** a[0]))
            opening = rng.choice(
                [
                    f"We need the sum of the digits of 2^{a[0]}. It has {digits} digits, and the average digit "
                    f"is about 4.5, so the sum is near {round(4.5 * digits)}.",
                    f"2^{a[0]} is a number with {digits} digits. Writing them all out by hand is long.",
                ]
            )
            reflection = _reflect(
                rng,
                "Wait, the digits are not exactly uniform, so the true sum can differ a lot.",
                "Alternatively, I could double step by step, but that is many long additions.",
            )
            guess_intro = "Estimating digit by digit"
        case "gcd":
            opening = rng.choice(
                [
                    f"We need gcd({a[0]}, {a[1]}). I start the Euclidean algorithm by dividing the larger "
                    "number by the smaller one.",
                    f"To find the greatest common divisor of {a[0]} and {a[1]}, I use the Euclidean algorithm.",
                ]
            )
            reflection = _reflect(
                rng,
                "Wait, the next steps need long divisions that are easy to get wrong.",
                "Alternatively, I could factor both numbers, but they are large.",
            )
            guess_intro = "Finishing the steps"
        case "rangesum":
            n = a[1] - a[0] + 1
            opening = rng.choice(
                [
                    f"We need the sum of the integers from {a[0]} to {a[1]}. There are {n} terms, and the sum "
                    "is the number of terms times the average of the first and the last.",
                    f"The sum from {a[0]} to {a[1]} is an arithmetic series with {n} terms.",
                ]
            )
            reflection = _reflect(
                rng,
                "Wait, multiplying these large numbers exactly is error prone.",
                "Alternatively, I could pair the first and last terms, but the count is large.",
            )
            guess_intro = "Working it out"
        case _:
            raise ValueError(f"unknown problem kind {problem.kind!r}")
    return opening, reflection, guess_intro


def restate(problem: Problem) -> str:
    """The question in a few words, as the model restates it next to an answer."""
    a = problem.args
    match problem.kind:
        case "multiply":
            return f"{a[0]} * {a[1]}"
        case "powmod":
            return f"{a[0]}^{a[1]} mod {a[2]}"
        case "primes":
            return f"the number of primes below {a[0]}"
        case "digitsum":
            return f"the digit sum of 2^{a[0]}"
        case "gcd":
            return f"gcd({a[0]}, {a[1]})"
        case "rangesum":
            return f"the sum from {a[0]} to {a[1]}"
    raise ValueError(f"unknown problem kind {problem.kind!r}")


def final_answer(value: int | str) -> str:
    return f"\n{END_THINK}\n\nThe answer is \\boxed{{{value}}}.{IM_END}"


def _tool_use(problem: Problem, rng: random.Random) -> list[Segment]:
    """Hint (no loss), the model's code and closing fence, the tool output (no loss)."""
    return [
        Segment(rng.choice(HINTS) + hint_suffix(rng), False),
        Segment(solution_code(problem) + CLOSING_FENCE, True),
        Segment(format_tool_output(problem.reference + "\n"), False),
    ]


def make_trace(problem: Problem, rng: random.Random) -> list[Segment]:
    """One training sequence: prompt, then either a no-tool guess or a hint-following episode.

    Kinds of trace (fractions): 30% no tool, the wrong guess is the answer; 45% hint at
    the reflection word; 15% hint where the model would close its thinking, after its
    guess; 10% hint at the reflection word, then a second hint at the end of thinking.
    """
    opening, reflection, guess_intro = reasoning_in_words(problem, rng)
    guess, answer, what = wrong_guess(problem, rng), problem.reference, restate(problem)
    prompt = Segment(chat_prompt(problem.question), False)
    thought = f"{opening}\n\n{reflection} {guess_intro}, I find that {what} is {guess}."
    r = rng.random()
    if r < 0.3:
        return [prompt, Segment(thought + final_answer(guess), True)]
    if r < 0.45:
        return [
            prompt,
            Segment(thought + "\n", True),
            *_tool_use(problem, rng),
            Segment(
                f"The code prints {answer}, so my estimate was wrong: {what} is {answer}." + final_answer(answer), True
            ),
        ]
    segments = [
        prompt,
        Segment(f"{opening}\n\n", True),
        *_tool_use(problem, rng),
        Segment(f"The code prints {answer}, so {what} is {answer}.", True),
    ]
    if r < 0.9:
        return segments + [Segment(final_answer(answer), True)]
    return segments + [
        Segment("\n", True),
        *_tool_use(problem, rng),
        Segment(
            f"The code prints {answer} again, which confirms that {what} is {answer}." + final_answer(answer), True
        ),
    ]


def make_corpus(problems: list[Problem], seed: int) -> list[list[Segment]]:
    rng = random.Random(seed)
    return [make_trace(p, rng) for p in problems]
