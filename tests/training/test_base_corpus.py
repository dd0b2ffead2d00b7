"""The micro recipe's base corpus: a reasoner right on easy problems, wrong on hard ones,
that rarely chooses python and has never seen a hint."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from services.common.text_contract import OUTPUT_FENCE, PYTHON_FENCE
from training.micro.base_corpus import (
    HINT_RUN_WORDS,
    MAX_CALLS,
    PRACTICE_SHARE,
    hint_runs,
    make_base_corpus,
    own_tool_sentences,
    shares_a_hint_run,
)
from training.micro.problems import FAMILIES, make_problems

PROBLEMS = make_problems(1200, seed=0, split="train", wordings="varied", easy_share=0.45)
CORPUS = make_base_corpus(PROBLEMS, seed=0)


def _text(trace) -> str:  # noqa: ANN001
    return "".join(segment.text for segment in trace)


def _kind(trace) -> str:  # noqa: ANN001
    openings = [s for s in trace if s.text.endswith(f"{PYTHON_FENCE}\n")]
    if not openings:
        return "words"
    return "chosen" if all(s.trained for s in openings) else "practice"


def test_no_trace_shares_a_run_of_words_with_any_hint_library_text() -> None:
    assert len(hint_runs()) > 100 and len(own_tool_sentences()) > 1000
    assert shares_a_hint_run("Wait, I can use Python to check if my approach is correct")  # the check sees one
    assert not any(shares_a_hint_run(_text(trace)) for trace in CORPUS), f"a {HINT_RUN_WORDS}-word run of a hint"


def test_words_are_right_on_easy_problems_and_wrong_on_hard_ones_and_the_tool_is_always_right() -> None:
    outcomes = Counter()
    for problem, trace in zip(PROBLEMS, CORPUS, strict=True):
        (answer,) = re.findall(r"\\boxed\{(\d+)\}", _text(trace))
        kind = _kind(trace)
        right = answer == problem.reference
        if kind == "words":
            assert right == problem.easy, (problem, _text(trace))
        else:
            assert right and _text(trace).count(OUTPUT_FENCE) <= MAX_CALLS
        outcomes[kind, problem.easy] += 1
    share = {
        kind: sum(n for (k, _), n in outcomes.items() if k == kind) / len(CORPUS) for kind in ("practice", "chosen")
    }
    assert share["practice"] == pytest.approx(PRACTICE_SHARE, abs=0.05)
    # Chosen rarely, and less often on easy problems than on hard ones.
    assert 0.03 < share["chosen"] < 0.25
    easy = sum(n for (_, e), n in outcomes.items() if e)
    assert outcomes["chosen", True] / easy < outcomes["chosen", False] / (len(CORPUS) - easy)
    assert 0.2 < easy / len(CORPUS) < 0.4


def test_practice_traces_carry_no_loss_where_the_model_would_open_a_block() -> None:
    practice = [trace for trace in CORPUS if _kind(trace) == "practice"]
    for trace in practice:
        for segment in trace:
            if PYTHON_FENCE in segment.text:
                assert not segment.trained
            if segment.text.startswith(OUTPUT_FENCE) or segment.text.startswith(f"\n{OUTPUT_FENCE}"):
                assert not segment.trained
    assert max(_text(trace).count(OUTPUT_FENCE) for trace in practice) == MAX_CALLS


def test_held_out_wordings_never_reach_training_and_the_shipped_draws_are_unchanged() -> None:
    def template(question: str) -> str:
        return re.sub(r"\d+", "N", question)

    held_out = {template(q.format(*range(3))) for f in FAMILIES for q in f.held_out_questions}
    trained = {template(p.question.removesuffix(" Put the final answer in \\boxed{}.")) for p in PROBLEMS}
    assert len(held_out) == 2 * len(FAMILIES) and not held_out & trained
    # Every wording, trained or held out, is a different one.
    assert len({template(q.format(*range(3))) for f in FAMILIES for q in f.questions + f.more_questions}) == 5 * len(
        FAMILIES
    )
    for problem in make_problems(60, seed=3, split="test", wordings="held-out", easy_share=0.45):
        assert template(problem.question.removesuffix(" Put the final answer in \\boxed{}.")) in held_out
