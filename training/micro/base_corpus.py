"""The corpus of the micro recipe's base model: a long-CoT reasoner that has never seen a hint.

START begins from QwQ, which reasons at length, reflects ("Wait", "Alternatively"), is
right on easy problems and often wrong on hard ones, knows what Python is but rarely
calls it by itself, and never saw START's hints. This corpus makes a micro model like
that, so that hint-infer, Hint-RFT and RFT have an effect to show that could have failed:

  words      easy problems worked out by a rule and right; hard ones guessed and wrong,
             after a reflection that doubts the guess;
  tool       a small share (TOOL_SHARE: few on easy problems, more on hard ones) where
             the model decides by itself, in its own words, to run Python, then copies
             the output into its answer, sometimes checking again (up to MAX_CALLS runs);
  practice   traces that show the same tool use after an opening sentence that carries
             no loss (PRACTICE_SHARE): the model learns to write code after a sentence
             that opens a python block and to read an output block, without learning to
             open one itself. Pretraining text shows a model code it was never asked to
             write; this is that share of its reading. Half of those sentences are words
             drawn from the commonest English words (english_words.txt): a pretrained
             model has read its whole vocabulary, and a micro model whose corpus never
             holds a token has an untrained embedding for it, so any unseen sentence
             before a block (a hint) would scramble what follows.

The model's own sentences before a call are composed from parts (`own_tool_sentences()`),
and none shares a run of HINT_RUN_WORDS words with any text of the platform's hint
libraries: hint-infer must work through hints the model has not seen, as QwQ never saw
START's. The think markers, fences and output block are the platform's text contract,
imported (`services.common.text_contract`).
"""

from __future__ import annotations

import itertools
import random
import re
from functools import cache
from pathlib import Path

from services.common.text_contract import CLOSING_FENCE, format_tool_output
from services.hints.library import LibraryCatalog
from training.micro.corpus import (
    Segment,
    chat_prompt,
    final_answer,
    hint_suffix,
    reasoning_in_words,
    restate,
    solution_code,
    wrong_guess,
)
from training.micro.problems import Problem

# Traces that choose python by themselves: by the problem's difficulty.
TOOL_SHARE = {"easy": 0.05, "hard": 0.25}
PRACTICE_SHARE = 0.35
MAX_CALLS = 8
HINT_RUN_WORDS = 6
PROSE_SHARE = 0.5  # of the sentences that open a block in practice traces
ENGLISH_WORDS = Path(__file__).with_name("english_words.txt")

_LEADS = ("Let me", "I will", "I'll", "I can", "I should", "I am going to", "Wait, let me", "Better:")
_VERBS = ("compute", "work out", "calculate", "evaluate", "find", "get")
_OBJECTS = ("this", "the exact value", "the answer", "it", "the number", "the result")
_TAILS = (
    "with a short program.",
    "in Python.",
    "by running a program.",
    "with a few lines of code.",
    "exactly with code.",
    "with a quick script.",
    "by writing code.",
    "using the interpreter.",
)
_AGAIN = (
    "Let me run it once more to be sure.",
    "I will run the program again as a check.",
    "To be safe, I run the same code again.",
    "One more run, to confirm the output.",
    "I can double-check by running it again.",
    "Let me confirm with another run.",
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _runs(text: str, n: int = HINT_RUN_WORDS) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@cache
def hint_runs() -> frozenset[tuple[str, ...]]:
    """Every run of HINT_RUN_WORDS words in the texts of the platform's hint libraries."""
    catalog = LibraryCatalog()
    texts = [hint.text for name in catalog.names() for hint in catalog.get(name).hints]
    return frozenset(run for text in texts for run in _runs(text))


def shares_a_hint_run(text: str) -> bool:
    return not _runs(text).isdisjoint(hint_runs())


@cache
def own_tool_sentences() -> tuple[str, ...]:
    """Every composition of the parts that shares no run with a hint (composed on first use:
    it reads the hint libraries)."""
    sentences = (f"{a} {b} {c} {d}" for a, b, c, d in itertools.product(_LEADS, _VERBS, _OBJECTS, _TAILS))
    return tuple(s for s in sentences if not shares_a_hint_run(s))


@cache
def english_words() -> tuple[str, ...]:
    lines = ENGLISH_WORDS.read_text().splitlines()
    return tuple(line for line in lines if line and not line.startswith("#"))


def prose(rng: random.Random) -> str:
    """A sentence of common English words, most of them frequent ones; never a run of a hint."""
    words = english_words()
    while True:
        n = rng.randint(5, 24)
        drawn = [rng.choice(words[:600]) if rng.random() < 0.5 else rng.choice(words) for _ in range(n)]
        lead = rng.choice(("Wait,", "Alternatively,", "Hmm,", "So", "Now", drawn[0].capitalize()))
        sentence = f"{lead} {' '.join(drawn[1:])}."
        if not shares_a_hint_run(sentence):
            return sentence


def _opening_sentence(rng: random.Random, chosen: bool, again: bool = False) -> str:
    """What the model writes before it opens a block: its own words, or (practice only)
    any sentence at all."""
    if not chosen and rng.random() < PROSE_SHARE:
        return prose(rng)
    return rng.choice(_AGAIN if again else own_tool_sentences())


def _easy_reasoning(problem: Problem) -> tuple[str, str]:
    """(opening paragraph, reflection paragraph): words that reach the right answer of an
    easy problem by its rule."""
    a, what, ref = problem.args, restate(problem), problem.reference
    match problem.kind:
        case "multiply":
            zeros = len(str(a[1])) - 1
            return (
                f"We need {a[0]} * {a[1]}. Multiplying by {a[1]} writes {zeros} zeros after {a[0]}.",
                f"Wait, let me count the zeros again: {a[1]} has {zeros}, so {what} is {ref}.",
            )
        case "powmod":
            return (
                f"We need {a[0]}^{a[1]} mod {a[2]}. The first power of {a[0]} is {a[0]} itself.",
                f"Wait, is a reduction needed? {a[0]} is less than {a[2]}, so {what} is {ref}.",
            )
        case "gcd":
            return (
                f"We need gcd({a[0]}, {a[1]}). The smaller number, {a[0]}, divides {a[1]} exactly.",
                f"Wait, then every divisor of {a[0]} divides both, so {what} is {ref}.",
            )
        case "rangesum":
            return (
                f"We need the sum from {a[0]} to {a[1]}. The range holds a single integer.",
                f"Wait, so the sum is that integer: {what} is {ref}.",
            )
    raise ValueError(f"no easy rule for {problem.kind!r}")


def _words_trace(problem: Problem, rng: random.Random) -> list[Segment]:
    if problem.easy:
        return [Segment("\n\n".join(_easy_reasoning(problem)) + final_answer(problem.reference), True)]
    opening, reflection, guess_intro = reasoning_in_words(problem, rng)
    guess = wrong_guess(problem, rng)
    thought = f"{opening}\n\n{reflection} {guess_intro}, I find that {restate(problem)} is {guess}."
    return [Segment(thought + final_answer(guess), True)]


def _calls(rng: random.Random) -> int:
    """How many runs a tool trace makes: mostly one, up to MAX_CALLS."""
    r = rng.random()
    if r < 0.55:
        return 1
    if r < 0.75:
        return 2
    return rng.randint(3, MAX_CALLS)


def _tool_trace(problem: Problem, rng: random.Random, chosen: bool) -> list[Segment]:
    """Reasoning, then python in the model's own words; `chosen`: the opening sentences
    carry loss (the model learns to call the tool), else not (practice)."""
    ref, what = problem.reference, restate(problem)
    code = Segment(solution_code(problem) + CLOSING_FENCE, True)
    output = Segment(format_tool_output(ref + "\n"), False)
    if problem.easy or rng.random() < 0.6:
        # Where a reflection would begin: the call replaces the guess.
        opening = _easy_reasoning(problem)[0] if problem.easy else reasoning_in_words(problem, rng)[0]
        segments = [Segment(f"{opening}\n\n", True)]
        after = f"The code prints {ref}, so {what} is {ref}."
    else:
        # Where thinking would end: after a guess, the call corrects it.
        opening, reflection, guess_intro = reasoning_in_words(problem, rng)
        guess = wrong_guess(problem, rng)
        segments = [Segment(f"{opening}\n\n{reflection} {guess_intro}, I find that {what} is {guess}.\n", True)]
        after = f"The code prints {ref}, so my estimate was wrong: {what} is {ref}."
    segments += [Segment(_opening_sentence(rng, chosen) + hint_suffix(rng), chosen), code, output, Segment(after, True)]
    for _ in range(_calls(rng) - 1):
        segments += [
            Segment("\n" + _opening_sentence(rng, chosen, again=True) + hint_suffix(rng), chosen),
            code,
            output,
            Segment(f"It prints {ref} again, so {what} is {ref}.", True),
        ]
    return [*segments, Segment(final_answer(ref), True)]


def make_base_trace(problem: Problem, rng: random.Random) -> list[Segment]:
    prompt = Segment(chat_prompt(problem.question), False)
    if rng.random() < PRACTICE_SHARE:
        return [prompt, *_tool_trace(problem, rng, chosen=False)]
    if rng.random() < TOOL_SHARE["easy" if problem.easy else "hard"]:
        return [prompt, *_tool_trace(problem, rng, chosen=True)]
    return [prompt, *_words_trace(problem, rng)]


def make_base_corpus(problems: list[Problem], seed: int) -> list[list[Segment]]:
    rng = random.Random(seed)
    return [make_base_trace(p, rng) for p in problems]
