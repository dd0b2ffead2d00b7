"""The micro model's problems, committed problem sets and tokenizer (no training here)."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
from pathlib import Path

import pytest
import sympy
from tokenizers import Tokenizer

from services.common.text_contract import format_tool_output
from training.micro.corpus import HINTS, chat_prompt, make_trace, solution_code
from training.micro.problems import KINDS, make_problems, split_of

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "start-micro"
DATA = ROOT / "data" / "micro"
NAMES = ("demo.jsonl", "eval.jsonl")


def test_make_problems_is_deterministic_and_balanced() -> None:
    first, again = make_problems(60, seed=7), make_problems(60, seed=7)
    assert first == again
    assert first != make_problems(60, seed=8)
    assert len({p.id for p in first}) == 60
    assert {p.kind for p in first} == set(KINDS)


def test_train_and_test_splits_never_overlap() -> None:
    train = {p.id for seed in range(3) for p in make_problems(600, seed=seed, split="train")}
    test = {p.id for seed in range(3) for p in make_problems(600, seed=seed, split="test")}
    assert not train & test
    assert all(split_of(p.kind, p.args) == "test" for p in make_problems(100, seed=1, split="test"))


def _recompute(kind: str, question: str) -> int:
    """The answer worked out from the question text alone, by other means than problems.py."""
    n = [int(x) for x in re.findall(r"\d+", question)]
    match kind:
        case "multiply":
            return n[0] * n[1]
        case "powmod":
            result = 1
            for _ in range(n[1]):
                result = result * n[0] % n[2]
            return result
        case "primes":
            return int(sympy.primepi(n[0] - 1))
        case "digitsum":
            assert n[0] == 2
            return sum(map(int, str(sympy.Integer(2) ** n[1])))
        case "gcd":
            return int(sympy.igcd(n[0], n[1]))
        case "rangesum":
            return sum(range(n[0], n[1] + 1))
    raise AssertionError(kind)


@pytest.mark.parametrize("split", ["train", "test"])
def test_references_match_an_independent_computation(split: str) -> None:
    for p in make_problems(120, seed=3, split=split):
        assert p.reference == str(_recompute(p.kind, p.question)), p


def test_solution_code_prints_the_reference() -> None:
    for p in make_problems(len(KINDS) * 2, seed=5):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(solution_code(p), {})
        assert printed.getvalue() == p.reference + "\n", p


def test_only_the_model_own_words_carry_loss() -> None:
    """Prompt, hints and tool outputs are context without loss, so the base model learns
    to follow a hint but never to write one (nor a tool output) by itself."""
    rng = random.Random(0)
    for p in make_problems(60, seed=2, split="train"):
        trace = make_trace(p, rng)
        untrained = [s.text for s in trace if not s.trained]
        assert untrained[0] == chat_prompt(p.question)
        for text in untrained[1:]:
            tool_output = format_tool_output(p.reference + "\n")
            assert (text.startswith(HINTS) and text.endswith("```python\n")) or text == tool_output
        for text in (s.text for s in trace if s.trained):
            assert "```output" not in text and not any(h in text for h in HINTS)


def test_committed_problem_sets_are_disjoint_test_problems() -> None:
    sets = {name: [json.loads(line) for line in (DATA / name).read_text().splitlines()] for name in NAMES}
    assert len(sets["demo.jsonl"]) == 16 and len(sets["eval.jsonl"]) == 64
    assert not {r["id"] for r in sets["demo.jsonl"]} & {r["id"] for r in sets["eval.jsonl"]}
    train = {p.id for p in make_problems(3000, seed=0, split="train")}
    for record in sets["demo.jsonl"] + sets["eval.jsonl"]:
        assert set(record) == {"id", "question", "reference", "task_type"}
        assert record["task_type"] == "math" and record["id"] not in train
        assert record["reference"] == str(_recompute(record["id"].split("-")[0], record["question"]))


def test_committed_tokenizer_round_trips_thinking_code_and_digits() -> None:
    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    text = chat_prompt("What is 4821 * 7393?") + (
        "Rough.\n\nWait, I can use Python.\n```python\nprint(4821 * 7393)\n```"
        + format_tool_output("35641653\n")
        + "So 35641653.\n</think>\n\nThe answer is \\boxed{35641653}.<|im_end|>"
    )
    enc = tok.encode(text)
    assert tok.decode(enc.ids, skip_special_tokens=False) == text
    assert "</think>" in tok.decode(enc.ids, skip_special_tokens=True)
    for single in ("<think>", "</think>", "```python", "```output", "<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert tok.token_to_id(single) is not None, single
    assert all(tok.token_to_id(d) is not None for d in "0123456789")
    assert [tok.id_to_token(i) for i in tok.encode("35641653").ids] == list("35641653")


def test_committed_chat_template_matches_the_training_prompt() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    question = "What is 4821 * 7393? Put the final answer in \\boxed{}."
    messages = [{"role": "user", "content": question}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == chat_prompt(question)
    assert len(tokenizer) == Tokenizer.from_file(str(MODEL / "tokenizer.json")).get_vocab_size()
