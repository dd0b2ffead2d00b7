"""One text contract (services/common/text_contract.py) for the services, training and the micro corpus.

The micro model (models/start-micro) learnt these strings: moving them into one module
must not change a byte of what the corpus writer produces, and no module that reads or
writes the model's text keeps a copy of them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
from pathlib import Path

from services.common import text_contract as contract
from training.micro.corpus import CHAT_TEMPLATE, HINTS, IM_END, chat_prompt, make_corpus, make_trace
from training.micro.problems import make_problems

ROOT = Path(__file__).resolve().parents[2]
# sha256 of the corpus writer's output for 600 training problems, seed 0, recorded before
# the strings moved into the contract module: the corpus the committed model learnt from.
CORPUS_SHA256 = "f51cee484d60c4ae7413c00d7a02fada67fe2ac0648cf234b56ad5fdd7bc296d"
# The modules that read or write the model's text and must import the contract, not copy it.
CONTRACT_USERS = [
    "services/common/episode.py", "services/scoring/extract.py", "services/sandbox/executor.py",
    *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "services" / "hints").glob("*.py"))),
    *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "training" / "micro").glob("*.py"))),
    "training/demo_episodes.py",
]


def test_the_corpus_writer_writes_byte_for_byte_what_the_micro_model_learnt() -> None:
    corpus = make_corpus(make_problems(600, seed=0, split="train"), seed=0)
    blob = json.dumps([[(segment.text, segment.trained) for segment in trace] for trace in corpus])
    assert hashlib.sha256(blob.encode()).hexdigest() == CORPUS_SHA256


def test_the_corpus_is_written_in_the_contracts_strings() -> None:
    rng = random.Random(3)
    for problem in make_problems(60, seed=5, split="train"):
        trace = make_trace(problem, rng)
        assert trace[0].text == chat_prompt(problem.question) and trace[0].text.endswith(contract.START_THINK + "\n")
        assert contract.END_THINK in trace[-1].text and trace[-1].text.endswith(IM_END)
        for before, segment in zip(trace, trace[1:], strict=False):
            if not segment.trained and segment.text.startswith(HINTS):
                assert segment.text.endswith(contract.PYTHON_FENCE + "\n")  # the hint opens the tool call
            elif not segment.trained:
                # What the platform appends after a tool call, exactly.
                assert segment.text == contract.format_tool_output(problem.reference + "\n")
                assert before.text.endswith(contract.CLOSING_FENCE)
    assert f"assistant\\n{contract.START_THINK}\\n" in CHAT_TEMPLATE


def _copies(path: Path) -> list[str]:
    """String constants of a module (docstrings aside) that are a contract string, or hold
    the output block's fence or a truncation marker's words."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    exact = {contract.START_THINK, contract.END_THINK, contract.PYTHON_FENCE, contract.CLOSING_FENCE,
             contract.OUTPUT_FENCE}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if text.strip("\n") in exact or contract.OUTPUT_FENCE in text or "output truncated" in text:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    return found


def test_the_modules_that_read_or_write_model_text_import_the_contract_rather_than_copy_it() -> None:
    assert [copy for name in CONTRACT_USERS for copy in _copies(ROOT / name)] == []
    # ...and the check sees a copy where there is one.
    assert _copies(ROOT / "services" / "common" / "text_contract.py")
