from start.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StopReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_REASON_UNSPECIFIED: _ClassVar[StopReason]
    STOP_REASON_START: _ClassVar[StopReason]
    STOP_REASON_REFLECTION: _ClassVar[StopReason]
    STOP_REASON_END_THINK: _ClassVar[StopReason]
    STOP_REASON_CODE_START: _ClassVar[StopReason]
    STOP_REASON_CODE_END: _ClassVar[StopReason]
    STOP_REASON_TOOL_DONE: _ClassVar[StopReason]
    STOP_REASON_EOS: _ClassVar[StopReason]
    STOP_REASON_LENGTH: _ClassVar[StopReason]
STOP_REASON_UNSPECIFIED: StopReason
STOP_REASON_START: StopReason
STOP_REASON_REFLECTION: StopReason
STOP_REASON_END_THINK: StopReason
STOP_REASON_CODE_START: StopReason
STOP_REASON_CODE_END: StopReason
STOP_REASON_TOOL_DONE: StopReason
STOP_REASON_EOS: StopReason
STOP_REASON_LENGTH: StopReason

class EpisodeView(_message.Message):
    __slots__ = ("id", "options", "task_type", "steps", "tool_calls", "think_hints", "reflection_hints", "generated_tokens", "thinking_done", "tail")
    ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    THINK_HINTS_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_HINTS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    THINKING_DONE_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    options: _common_pb2.EpisodeOptions
    task_type: _common_pb2.TaskType
    steps: int
    tool_calls: int
    think_hints: int
    reflection_hints: int
    generated_tokens: int
    thinking_done: bool
    tail: str
    def __init__(self, id: _Optional[str] = ..., options: _Optional[_Union[_common_pb2.EpisodeOptions, _Mapping]] = ..., task_type: _Optional[_Union[_common_pb2.TaskType, str]] = ..., steps: _Optional[int] = ..., tool_calls: _Optional[int] = ..., think_hints: _Optional[int] = ..., reflection_hints: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., thinking_done: _Optional[bool] = ..., tail: _Optional[str] = ...) -> None: ...

class NextActionRequest(_message.Message):
    __slots__ = ("stop_reason", "stop_string", "view")
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_STRING_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    stop_reason: StopReason
    stop_string: str
    view: EpisodeView
    def __init__(self, stop_reason: _Optional[_Union[StopReason, str]] = ..., stop_string: _Optional[str] = ..., view: _Optional[_Union[EpisodeView, _Mapping]] = ...) -> None: ...

class NextActionResponse(_message.Message):
    __slots__ = ("kind", "append", "stop", "max_tokens")
    KIND_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    kind: _common_pb2.ActionKind
    append: _containers.RepeatedCompositeFieldContainer[_common_pb2.Span]
    stop: _containers.RepeatedScalarFieldContainer[str]
    max_tokens: int
    def __init__(self, kind: _Optional[_Union[_common_pb2.ActionKind, str]] = ..., append: _Optional[_Iterable[_Union[_common_pb2.Span, _Mapping]]] = ..., stop: _Optional[_Iterable[str]] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class Hint(_message.Message):
    __slots__ = ("id", "category", "text", "weight")
    ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    id: str
    category: str
    text: str
    weight: float
    def __init__(self, id: _Optional[str] = ..., category: _Optional[str] = ..., text: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class ListHintsRequest(_message.Message):
    __slots__ = ("library",)
    LIBRARY_FIELD_NUMBER: _ClassVar[int]
    library: str
    def __init__(self, library: _Optional[str] = ...) -> None: ...

class ListHintsResponse(_message.Message):
    __slots__ = ("library", "version", "hints")
    LIBRARY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    library: str
    version: str
    hints: _containers.RepeatedCompositeFieldContainer[Hint]
    def __init__(self, library: _Optional[str] = ..., version: _Optional[str] = ..., hints: _Optional[_Iterable[_Union[Hint, _Mapping]]] = ...) -> None: ...
