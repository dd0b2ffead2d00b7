"""The micro evaluator treats the model's code as untrusted: it runs in the gVisor sandbox,
and the model sees what an episode would show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.text_contract import OUTPUT_FENCE
from services.sandbox.executor import GVISOR_PROC_VERSION
from training.micro.evaluate import SandboxedPython, evaluate, hint_texts, transformers_engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.runsc
def test_model_code_runs_in_gvisor_and_comes_back_as_an_episode_shows_it() -> None:
    with SandboxedPython() as run_python:
        assert run_python("print(6 * 7)") == "42\n"
        # gVisor answers for the kernel: its /proc/version is its own.
        assert GVISOR_PROC_VERSION in run_python("print(open('/proc/version').read())")
        failed = run_python("print('before')\n1 / 0")
        assert failed.startswith("before\n") and failed.rstrip().endswith("ZeroDivisionError: division by zero")
        assert "TimeoutError" in run_python("while True: pass")
        assert "code" in run_python("   ")  # an empty block: the sandbox's refusal, not a crash


@pytest.mark.slow
@pytest.mark.runsc
def test_hint_infer_on_the_micro_model_uses_the_sandboxed_output() -> None:
    problems = [json.loads(line) for line in (ROOT / "data" / "micro" / "eval.jsonl").read_text().splitlines()[:1]]
    with SandboxedPython() as run_python:
        results = evaluate(
            transformers_engine(ROOT / "models" / "start-micro"), run_python, problems, hint_texts("micro")
        )
    for problem, result in zip(problems, results, strict=True):
        # The output block holds what the code printed in the sandbox, and the model copies it.
        assert f"{OUTPUT_FENCE}\n{problem['reference']}\n" in result.hint_infer
        assert result.hint_correct
