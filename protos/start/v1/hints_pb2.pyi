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

class NextActionRequest(_message.Message):
    __slots__ = ("episode", "stop_reason", "stop_string")
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_STRING_FIELD_NUMBER: _ClassVar[int]
    episode: _common_pb2.Episode
    stop_reason: StopReason
    stop_string: str
    def __init__(self, episode: _Optional[_Union[_common_pb2.Episode, _Mapping]] = ..., stop_reason: _Optional[_Union[StopReason, str]] = ..., stop_string: _Optional[str] = ...) -> None: ...

class NextActionResponse(_message.Message):
    __slots__ = ("kind", "append", "stop")
    KIND_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    kind: _common_pb2.ActionKind
    append: _containers.RepeatedCompositeFieldContainer[_common_pb2.Span]
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[_common_pb2.ActionKind, str]] = ..., append: _Optional[_Iterable[_Union[_common_pb2.Span, _Mapping]]] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

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
