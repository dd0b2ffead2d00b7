from start.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreItem(_message.Message):
    __slots__ = ("task_type", "response", "reference", "tests")
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    task_type: _common_pb2.TaskType
    response: str
    reference: str
    tests: _containers.RepeatedCompositeFieldContainer[_common_pb2.TestCase]
    def __init__(self, task_type: _Optional[_Union[_common_pb2.TaskType, str]] = ..., response: _Optional[str] = ..., reference: _Optional[str] = ..., tests: _Optional[_Iterable[_Union[_common_pb2.TestCase, _Mapping]]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoreItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ScoreItem, _Mapping]]] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("correct", "extracted", "reason", "wall_ms")
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    EXTRACTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WALL_MS_FIELD_NUMBER: _ClassVar[int]
    correct: bool
    extracted: str
    reason: str
    wall_ms: float
    def __init__(self, correct: _Optional[bool] = ..., extracted: _Optional[str] = ..., reason: _Optional[str] = ..., wall_ms: _Optional[float] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ...) -> None: ...

class RepetitionRequest(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class RepetitionResponse(_message.Message):
    __slots__ = ("score", "repetitive", "reason")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REPETITIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    score: float
    repetitive: bool
    reason: str
    def __init__(self, score: _Optional[float] = ..., repetitive: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...
