"""Check sandbox requests once, at the edge; the domain code below trusts what passes.

Zero means "the service default" for every limit (proto3's unset value); anything
negative, non-finite or beyond the service maximum is refused with the field's name and
the range that would be valid.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from services.common.errors import InvalidArgument, require
from services.sandbox.executor import Execution, Limits
from services.sandbox.testcases import Case
from start.v1 import common_pb2, sandbox_pb2

if TYPE_CHECKING:
    from services.sandbox.server import Settings

LANGUAGES = ("", "python", "python3")


class LimitPolicy:
    """Defaults and maxima from the service settings."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings

    def timeout(self, value: float, field: str = "timeout_s") -> float:
        require(math.isfinite(value) and value >= 0, field, "must be a finite number of seconds >= 0")
        require(
            value <= self.s.max_timeout_s, field, f"must be at most {self.s.max_timeout_s} s (0 = default)"
        )
        return value or self.s.default_timeout_s

    def memory(self, value: int, field: str = "memory_mb") -> int:
        require(value >= 0, field, "must be >= 0 MiB (0 = default)")
        require(value <= self.s.max_memory_mb, field, f"must be at most {self.s.max_memory_mb} MiB")
        require(value == 0 or value >= 16, field, "must be at least 16 MiB (0 = default)")
        return value or self.s.default_memory_mb

    def output(self, value: int, field: str = "output_limit_bytes") -> int:
        require(value >= 0, field, "must be >= 0 bytes (0 = default)")
        require(
            value <= self.s.max_output_limit_bytes, field, f"must be at most {self.s.max_output_limit_bytes}"
        )
        return value or self.s.default_output_limit_bytes

    def limits(self, timeout_s: float, memory_mb: int, output_limit_bytes: int) -> Limits:
        timeout = self.timeout(timeout_s)
        return Limits(
            timeout_s=timeout,
            cpu_s=timeout,
            memory_mb=self.memory(memory_mb),
            output_limit_bytes=self.output(output_limit_bytes),
            max_processes=self.s.max_processes,
            file_size_mb=self.s.max_file_size_mb,
        )

    def code(self, code: str) -> str:
        require(bool(code.strip()), "code", "must not be empty")
        size = len(code.encode())
        require(
            size <= self.s.max_code_bytes, "code", f"is {size} bytes; at most {self.s.max_code_bytes} allowed"
        )
        return code

    def stdin(self, stdin: str, field: str = "stdin") -> str:
        size = len(stdin.encode())
        require(
            size <= self.s.max_stdin_bytes, field, f"is {size} bytes; at most {self.s.max_stdin_bytes} allowed"
        )
        return stdin


def execution(request: sandbox_pb2.ExecuteRequest, policy: LimitPolicy) -> Execution:
    require(
        request.language.lower() in LANGUAGES,
        "language",
        f"{request.language!r} is not supported; use 'python' (or leave it empty)",
    )
    return Execution(
        code=policy.code(request.code),
        stdin=policy.stdin(request.stdin),
        limits=policy.limits(request.timeout_s, request.memory_mb, request.output_limit_bytes),
    )


def _json_field(text: str, field: str) -> None:
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(field, f"is not valid JSON ({exc})") from exc


def test_case(case: common_pb2.TestCase, index: int, policy: LimitPolicy) -> Case:
    prefix = f"tests[{index}]"
    if case.fn_name:
        require(case.fn_name.isidentifier(), f"{prefix}.fn_name", "must be a Python identifier")
        require(bool(case.expected_json), f"{prefix}.expected_json", "is required with fn_name")
        _json_field(case.expected_json, f"{prefix}.expected_json")
        if case.args_json:
            _json_field(case.args_json, f"{prefix}.args_json")
    policy.stdin(case.input, f"{prefix}.input")
    return Case(case.input, case.expected_output, case.fn_name, case.args_json, case.expected_json)


def run_tests(request: sandbox_pb2.RunTestsRequest, policy: LimitPolicy) -> tuple[str, list[Case], Limits]:
    code = policy.code(request.code)
    require(len(request.tests) > 0, "tests", "at least one test case is required")
    require(
        len(request.tests) <= policy.s.max_tests,
        "tests",
        f"has {len(request.tests)} cases; at most {policy.s.max_tests} allowed",
    )
    cases = [test_case(case, i, policy) for i, case in enumerate(request.tests)]
    return code, cases, policy.limits(request.timeout_s, request.memory_mb, 0)
