"""Run a program against test cases: the domain logic behind `RunTests` (code tasks).

Two kinds of case, as in LiveCodeBench / HumanEval:

- stdin/stdout: the program reads `input` on stdin; its stdout must equal
  `expected_output` line by line after trailing whitespace is stripped from each line and
  trailing blank lines are dropped (LiveCodeBench's comparison).
- function call: `fn_name` with `args_json` (a JSON array of positional arguments); the
  return value must equal `expected_json` once both are JSON values. A top-level function
  is used, else a method of `Solution()` (LeetCode style).

Every case is its own execution in a fresh sandbox child, so one case cannot leak state
into the next. Scoring calls this directly; the gRPC servicer is a thin adapter over it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from services.sandbox.executor import Execution, Limits, Result, SandboxPool, Status


@dataclass(frozen=True)
class Case:
    input: str = ""
    expected_output: str = ""
    fn_name: str = ""
    args_json: str = ""
    expected_json: str = ""


@dataclass(frozen=True)
class CaseVerdict:
    index: int
    passed: bool
    status: Status
    stdout: str
    stderr: str
    wall_ms: float
    reason: str


def normalize_stdout(text: str) -> list[str]:
    """LiveCodeBench's comparison: per-line trailing whitespace and trailing blank lines ignored."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


_CALL_HARNESS = '''

def __start_call():
    import json as _json
    _args = _json.loads({args!r})
    if not isinstance(_args, list):
        _args = [_args]
    _fn = globals().get({fn!r})
    if _fn is None and "Solution" in globals():
        _fn = getattr(Solution(), {fn!r})
    if _fn is None:
        raise NameError("function {fn} is not defined")
    _result = _fn(*_args)
    print()
    print({marker!r} + _json.dumps(_result))

__start_call()
'''


def call_program(code: str, case: Case, marker: str) -> str:
    """The program plus a harness that calls the function and prints its result as JSON."""
    return code + _CALL_HARNESS.format(args=case.args_json or "[]", fn=case.fn_name, marker=marker)


def _brief(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def judge_stdio(case: Case, result: Result) -> tuple[bool, str]:
    got, want = normalize_stdout(result.stdout), normalize_stdout(case.expected_output)
    if got == want:
        return True, ""
    for line_no, (g, w) in enumerate(zip(got, want, strict=False), start=1):
        if g != w:
            return False, f"wrong answer at line {line_no}: expected {_brief(w)!r}, got {_brief(g)!r}"
    return False, f"wrong answer: expected {len(want)} lines, got {len(got)}"


def judge_call(case: Case, result: Result, marker: str) -> tuple[bool, str]:
    lines = [line for line in result.stdout.splitlines() if line.startswith(marker)]
    if not lines:
        return False, "the function returned no value"
    got = json.loads(lines[-1][len(marker):])
    want = json.loads(case.expected_json)
    if got == want:
        return True, ""
    return False, f"wrong answer: expected {_brief(json.dumps(want))}, got {_brief(json.dumps(got))}"


def failure_reason(result: Result) -> str:
    last = result.stderr.strip().splitlines()[-1:] or [""]
    return {
        Status.TIMEOUT: "time limit exceeded",
        Status.MEMORY_LIMIT: "memory limit exceeded",
        Status.OUTPUT_LIMIT: "output limit exceeded",
        Status.SANDBOX_ERROR: f"sandbox error: {_brief(last[0])}",
    }.get(result.status, f"runtime error (exit {result.exit_code}): {_brief(last[0])}")


async def run_tests(
    pool: SandboxPool, code: str, cases: list[Case], limits: Limits, stop_on_first_failure: bool
) -> list[CaseVerdict]:
    """Run every case in order (stopping at the first failure if asked); one verdict each."""
    verdicts: list[CaseVerdict] = []
    for index, case in enumerate(cases):
        marker = f"__START_RESULT_{secrets.token_hex(8)}__:"
        if case.fn_name:
            result = await pool.execute(Execution(call_program(code, case, marker), "", limits))
        else:
            result = await pool.execute(Execution(code, case.input, limits))
        if result.status != Status.OK:
            passed, reason = False, failure_reason(result)
        elif case.fn_name:
            passed, reason = judge_call(case, result, marker)
        else:
            passed, reason = judge_stdio(case, result)
        stdout = result.stdout
        if case.fn_name:  # the harness's result line is ours, not the program's output
            stdout = "\n".join(line for line in stdout.splitlines() if not line.startswith(marker))
        verdicts.append(
            CaseVerdict(index, passed, result.status, stdout, result.stderr, result.wall_ms, reason)
        )
        if stop_on_first_failure and not passed:
            break
    return verdicts
