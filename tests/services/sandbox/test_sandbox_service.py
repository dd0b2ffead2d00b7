"""The sandbox service over gRPC: bad requests, RunTests, the bounded queue, and its
refusal to run untrusted code without gVisor."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from services.common.channels import channel
from start.v1 import common_pb2, sandbox_pb2, sandbox_pb2_grpc
from startctl.processes import free_port, service_process, wait_ready

OK = sandbox_pb2.EXECUTION_STATUS_OK


def execute(addr: str, timeout: float = 60, **fields) -> sandbox_pb2.ExecuteResponse:
    with channel(addr) as ch:
        return sandbox_pb2_grpc.SandboxServiceStub(ch).Execute(sandbox_pb2.ExecuteRequest(**fields), timeout=timeout)


def run_tests(addr: str, **fields) -> sandbox_pb2.RunTestsResponse:
    with channel(addr) as ch:
        return sandbox_pb2_grpc.SandboxServiceStub(ch).RunTests(sandbox_pb2.RunTestsRequest(**fields), timeout=120)


@pytest.mark.runsc
@pytest.mark.parametrize(
    ("fields", "field_named"),
    [
        ({"code": ""}, "code"),
        ({"code": "   \n"}, "code"),
        ({"code": "x = 1\n" * 60_000}, "code"),
        ({"code": "print(1)", "language": "javascript"}, "language"),
        ({"code": "print(1)", "timeout_s": -1}, "timeout_s"),
        ({"code": "print(1)", "timeout_s": 1e9}, "timeout_s"),
        ({"code": "print(1)", "timeout_s": float("nan")}, "timeout_s"),
        ({"code": "print(1)", "memory_mb": -5}, "memory_mb"),
        ({"code": "print(1)", "memory_mb": 1_000_000}, "memory_mb"),
        ({"code": "print(1)", "memory_mb": 1}, "memory_mb"),
        ({"code": "print(1)", "output_limit_bytes": -1}, "output_limit_bytes"),
        ({"code": "print(1)", "output_limit_bytes": 10**12}, "output_limit_bytes"),
    ],
)
def test_bad_execute_request_gets_invalid_argument_naming_the_field(grpc_sandbox, fields, field_named):
    with pytest.raises(grpc.RpcError) as failure:
        execute(grpc_sandbox.addr, **fields)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details().startswith(f"{field_named}:")


@pytest.mark.runsc
def test_execute_reads_stdin_and_reports_exit_code(grpc_sandbox):
    reply = execute(grpc_sandbox.addr, code="import sys\nn = int(input())\nprint(n * 2)\nsys.exit(3)\n",
                    stdin="21\n")
    assert reply.status == sandbox_pb2.EXECUTION_STATUS_RUNTIME_ERROR
    assert (reply.exit_code, reply.stdout) == (3, "42\n")


@pytest.mark.runsc
def test_sympy_and_numpy_are_importable_and_preloaded(grpc_sandbox):
    code = (
        "import sys\nprint('sympy' in sys.modules)\n"
        "import sympy, numpy\nprint(sympy.isprime(97), int(numpy.arange(5).sum()))\n"
    )
    reply = execute(grpc_sandbox.addr, code=code)
    assert reply.status == OK, reply.stderr
    assert reply.stdout == "True\nTrue 10\n"


@pytest.mark.runsc
def test_run_tests_compares_stdout_like_livecodebench(grpc_sandbox):
    code = "a, b = map(int, input().split())\nprint(a + b, '  ')\nprint()\n"
    cases = [
        common_pb2.TestCase(input="1 2\n", expected_output="3\n"),
        common_pb2.TestCase(input="2 2\n", expected_output="4"),
        common_pb2.TestCase(input="2 2\n", expected_output="5\n"),
        common_pb2.TestCase(input="oops\n", expected_output="0\n"),
    ]
    reply = run_tests(grpc_sandbox.addr, code=code, tests=cases)
    assert [r.passed for r in reply.results] == [True, True, False, False]
    assert not reply.all_passed
    assert "wrong answer" in reply.results[2].reason
    assert reply.results[3].status == sandbox_pb2.EXECUTION_STATUS_RUNTIME_ERROR
    assert "ValueError" in reply.results[3].reason
    assert all(r.wall_ms > 0 for r in reply.results)


@pytest.mark.runsc
def test_run_tests_calls_functions_and_solution_methods(grpc_sandbox):
    function = "def add(a, b):\n    return [a + b, a * b]\n"
    method = "class Solution:\n    def twoSum(self, nums, target):\n        return sorted(nums)[:2]\n"
    plain = run_tests(grpc_sandbox.addr, code=function, tests=[
        common_pb2.TestCase(fn_name="add", args_json="[2, 3]", expected_json="[5, 6]"),
        common_pb2.TestCase(fn_name="add", args_json="[2, 2]", expected_json="[5, 6]"),
    ])
    assert [r.passed for r in plain.results] == [True, False]
    leet = run_tests(grpc_sandbox.addr, code=method, tests=[
        common_pb2.TestCase(fn_name="twoSum", args_json=json.dumps([[3, 1, 2], 9]), expected_json="[1, 2]"),
    ])
    assert leet.all_passed


@pytest.mark.runsc
def test_run_tests_stops_at_first_failure_when_asked(grpc_sandbox):
    cases = [common_pb2.TestCase(input="", expected_output=str(i)) for i in (1, 2, 1)]
    reply = run_tests(grpc_sandbox.addr, code="print(1)", tests=cases, stop_on_first_failure=True)
    assert [r.index for r in reply.results] == [0, 1]
    assert not reply.all_passed


@pytest.mark.runsc
def test_run_tests_reports_a_timeout_per_case(grpc_sandbox):
    code = "n = int(input())\nwhile n:\n    pass\nprint('done')\n"
    cases = [
        common_pb2.TestCase(input="0", expected_output="done"),
        common_pb2.TestCase(input="1", expected_output="done"),
    ]
    reply = run_tests(grpc_sandbox.addr, code=code, tests=cases, timeout_s=1)
    assert [r.passed for r in reply.results] == [True, False]
    assert reply.results[1].status == sandbox_pb2.EXECUTION_STATUS_TIMEOUT
    assert reply.results[1].reason == "time limit exceeded"


@pytest.mark.runsc
def test_bad_test_cases_get_invalid_argument(grpc_sandbox):
    for fields, field_named in [
        ({"code": "print(1)"}, "tests"),
        ({"code": "print(1)", "tests": [common_pb2.TestCase(fn_name="f", args_json="[1", expected_json="1")]},
         "tests[0].args_json"),
        ({"code": "print(1)", "tests": [common_pb2.TestCase(fn_name="not valid", expected_json="1")]},
         "tests[0].fn_name"),
    ]:
        with pytest.raises(grpc.RpcError) as failure:
            run_tests(grpc_sandbox.addr, **fields)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert failure.value.details().startswith(f"{field_named}:")


@pytest.fixture()
def small_pool(tmp_path):
    """One sandbox, room for one waiting execution: the third concurrent call is refused."""
    port = free_port()
    env = {
        "START_SANDBOX_STATE_DIR": str(tmp_path),
        "START_SANDBOX_POOL_SIZE": "1",
        "START_SANDBOX_MAX_QUEUE": "1",
        "START_SANDBOX_PRELOAD": "",
    }
    proc = service_process("sandbox", port, env, log_dir=tmp_path).start()
    addr = f"127.0.0.1:{port}"
    try:
        wait_ready(proc, addr, timeout_s=120)
        yield addr
    finally:
        proc.stop()


@pytest.mark.runsc
def test_more_executions_than_pool_and_queue_get_resource_exhausted(small_pool):
    def call(_: int) -> str:
        try:
            reply = execute(small_pool, code="import time\ntime.sleep(2)\nprint('slept')\n", timeout_s=10)
            return sandbox_pb2.ExecutionStatus.Name(reply.status)
        except grpc.RpcError as exc:
            return exc.code().name

    with ThreadPoolExecutor(4) as threads:
        outcomes = list(threads.map(call, range(4)))
    assert outcomes.count("EXECUTION_STATUS_OK") == 2, outcomes
    assert outcomes.count("RESOURCE_EXHAUSTED") == 2, outcomes
    assert execute(small_pool, code="print(1)").status == OK


@pytest.mark.runsc
def test_server_refuses_to_start_without_runsc_unless_trusted(tmp_path):
    env = {"START_SANDBOX_STATE_DIR": str(tmp_path), "START_SANDBOX_RUNSC_PATH": "/nonexistent/runsc"}
    proc = service_process("sandbox", free_port(), env, log_dir=tmp_path).start()
    deadline = time.monotonic() + 60
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not proc.alive()
    assert "START_SANDBOX_TRUSTED=true" in proc.tail()
    cli = subprocess.run(
        [sys.executable, "-m", "startctl", "sandbox", "exec", "-", "--json"],
        input="print(1)", capture_output=True, text=True, timeout=60,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert cli.returncode == 2 and "runsc not found" in cli.stderr


def test_trusted_mode_runs_without_runsc(tmp_path):
    port = free_port()
    env = {
        "START_SANDBOX_STATE_DIR": str(tmp_path),
        "START_SANDBOX_RUNSC_PATH": "/nonexistent/runsc",
        "START_SANDBOX_TRUSTED": "true",
        "START_SANDBOX_POOL_SIZE": "1",
        "START_SANDBOX_PRELOAD": "",
    }
    proc = service_process("sandbox", port, env, log_dir=tmp_path).start()
    addr = f"127.0.0.1:{port}"
    try:
        wait_ready(proc, addr, timeout_s=60)
        reply = execute(addr, code="print(sum(range(10)))")
        assert (reply.status, reply.stdout) == (OK, "45\n")
        looping = execute(addr, code="while True:\n    pass\n", timeout_s=1)
        assert looping.status == sandbox_pb2.EXECUTION_STATUS_TIMEOUT
    finally:
        proc.stop()


@pytest.mark.runsc
def test_a_caller_giving_up_does_not_mix_its_output_into_the_next_call(grpc_sandbox):
    with pytest.raises(grpc.RpcError) as failure:
        execute(grpc_sandbox.addr, timeout=0.5, code="import time\ntime.sleep(2)\nprint('first')\n")
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reply = execute(grpc_sandbox.addr, code="print('second')")
    assert (reply.status, reply.stdout) == (OK, "second\n")
