"""The domain code called directly (no gRPC): sandbox recycling, and how RunTests judges."""

from __future__ import annotations

import asyncio

import pytest

from services.sandbox.bundle import BundleSpec
from services.sandbox.executor import Execution, Limits, Result, SandboxPool, Status, make_launcher
from services.sandbox.testcases import Case, judge_call, judge_stdio, normalize_stdout


@pytest.mark.runsc
def test_sandbox_is_replaced_after_its_execution_budget(tmp_path):
    # Each sandbox numbers its executions' scratch directories from 1; a fresh sandbox
    # shows up as the numbering starting again.
    async def cwds() -> list[str]:
        launcher = make_launcher("runsc", False, "runsc", tmp_path, "ptrace", BundleSpec(preload=()))
        pool = SandboxPool(launcher, size=1, max_queue=4, executions_per_sandbox=2)
        await pool.start()
        try:
            results = [await pool.execute(Execution("import os\nprint(os.getcwd())")) for _ in range(5)]
        finally:
            await pool.close()
        assert all(r.status == Status.OK for r in results)
        return [r.stdout.strip() for r in results]

    assert asyncio.run(cwds()) == [f"/scratch/run-{n}" for n in (1, 2, 1, 2, 1)]


@pytest.mark.runsc
def test_sandbox_is_replaced_after_a_run_stopped_at_its_time_or_memory_limit(tmp_path):
    # Such a run leaves gVisor's sentry at its high-water memory and a host stub process
    # per process it had; the next execution gets a fresh sandbox (numbering from 1 again).
    async def outcomes() -> list[tuple[Status, str]]:
        launcher = make_launcher("runsc", False, "runsc", tmp_path, "ptrace", BundleSpec(preload=()))
        pool = SandboxPool(launcher, size=1, max_queue=4, executions_per_sandbox=100)
        await pool.start()
        where = "import os\nprint(os.getcwd(), flush=True)"
        try:
            runs = [
                Execution(where),
                Execution(where + "\nwhile True: pass", limits=Limits(timeout_s=1, cpu_s=1)),
                Execution(where),
                Execution(where + "\nb = bytearray(400 << 20)\nb[::4096] = b'x' * len(b[::4096])",
                          limits=Limits(memory_mb=128)),
                Execution(where),
                Execution(where + "\nraise SystemExit(3)"),
                Execution(where),
            ]
            results = [await pool.execute(run) for run in runs]
        finally:
            await pool.close()
        return [(r.status, r.stdout.strip().splitlines()[0] if r.stdout.strip() else "") for r in results]

    got = asyncio.run(outcomes())
    assert [status for status, _ in got] == [
        Status.OK, Status.TIMEOUT, Status.OK, Status.MEMORY_LIMIT, Status.OK, Status.RUNTIME_ERROR, Status.OK,
    ], got
    # An ordinary failure (exit 3) keeps the sandbox warm; a limit retires it.
    assert [cwd for _, cwd in got] == [f"/scratch/run-{n}" for n in (1, 2, 1, 2, 1, 2, 3)], got


def _ok(stdout: str) -> Result:
    return Result(Status.OK, 0, stdout, "", 1.0)


def test_stdout_comparison_ignores_trailing_whitespace_per_line_and_trailing_blank_lines():
    assert normalize_stdout("1 2  \r\n3\t\n\n\n") == ["1 2", "3"]
    case = Case(expected_output="1 2\n3")
    assert judge_stdio(case, _ok("1 2   \n3\n\n"))[0]
    assert not judge_stdio(case, _ok(" 1 2\n3"))[0], "leading whitespace is significant"
    passed, reason = judge_stdio(case, _ok("1 2\n4\n"))
    assert not passed and "line 2" in reason


def test_function_result_must_equal_the_expected_json_value():
    marker = "__M__:"
    case = Case(fn_name="f", expected_json="[1, [2, 3]]")
    assert judge_call(case, _ok(f"noise\n{marker}[1, [2, 3]]\n"), marker)[0]
    assert not judge_call(case, _ok(f"{marker}[1, [3, 2]]\n"), marker)[0]
    assert judge_call(case, _ok("[1, [2, 3]]\n"), marker) == (False, "the function returned no value")
