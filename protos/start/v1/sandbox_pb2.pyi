from start.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_OK: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_RUNTIME_ERROR: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_TIMEOUT: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_MEMORY_LIMIT: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_OUTPUT_LIMIT: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_SANDBOX_ERROR: _ClassVar[ExecutionStatus]
EXECUTION_STATUS_UNSPECIFIED: ExecutionStatus
EXECUTION_STATUS_OK: ExecutionStatus
EXECUTION_STATUS_RUNTIME_ERROR: ExecutionStatus
EXECUTION_STATUS_TIMEOUT: ExecutionStatus
EXECUTION_STATUS_MEMORY_LIMIT: ExecutionStatus
EXECUTION_STATUS_OUTPUT_LIMIT: ExecutionStatus
EXECUTION_STATUS_SANDBOX_ERROR: ExecutionStatus

class ExecuteRequest(_message.Message):
    __slots__ = ("code", "language", "stdin", "timeout_s", "memory_mb", "output_limit_bytes")
    CODE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    code: str
    language: str
    stdin: str
    timeout_s: float
    memory_mb: int
    output_limit_bytes: int
    def __init__(self, code: _Optional[str] = ..., language: _Optional[str] = ..., stdin: _Optional[str] = ..., timeout_s: _Optional[float] = ..., memory_mb: _Optional[int] = ..., output_limit_bytes: _Optional[int] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("status", "exit_code", "stdout", "stderr", "wall_ms")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    WALL_MS_FIELD_NUMBER: _ClassVar[int]
    status: ExecutionStatus
    exit_code: int
    stdout: str
    stderr: str
    wall_ms: float
    def __init__(self, status: _Optional[_Union[ExecutionStatus, str]] = ..., exit_code: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., wall_ms: _Optional[float] = ...) -> None: ...

class RunTestsRequest(_message.Message):
    __slots__ = ("code", "tests", "timeout_s", "memory_mb", "stop_on_first_failure")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    STOP_ON_FIRST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    code: str
    tests: _containers.RepeatedCompositeFieldContainer[_common_pb2.TestCase]
    timeout_s: float
    memory_mb: int
    stop_on_first_failure: bool
    def __init__(self, code: _Optional[str] = ..., tests: _Optional[_Iterable[_Union[_common_pb2.TestCase, _Mapping]]] = ..., timeout_s: _Optional[float] = ..., memory_mb: _Optional[int] = ..., stop_on_first_failure: _Optional[bool] = ...) -> None: ...

class TestResult(_message.Message):
    __slots__ = ("index", "passed", "status", "stdout", "stderr", "wall_ms", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    WALL_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    passed: bool
    status: ExecutionStatus
    stdout: str
    stderr: str
    wall_ms: float
    reason: str
    def __init__(self, index: _Optional[int] = ..., passed: _Optional[bool] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., wall_ms: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class RunTestsResponse(_message.Message):
    __slots__ = ("results", "all_passed")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ALL_PASSED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TestResult]
    all_passed: bool
    def __init__(self, results: _Optional[_Iterable[_Union[TestResult, _Mapping]]] = ..., all_passed: _Optional[bool] = ...) -> None: ...
