from start.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitEpisodeRequest(_message.Message):
    __slots__ = ("problem", "options", "episode_id")
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    problem: _common_pb2.Problem
    options: _common_pb2.EpisodeOptions
    episode_id: str
    def __init__(self, problem: _Optional[_Union[_common_pb2.Problem, _Mapping]] = ..., options: _Optional[_Union[_common_pb2.EpisodeOptions, _Mapping]] = ..., episode_id: _Optional[str] = ...) -> None: ...

class SubmitEpisodeResponse(_message.Message):
    __slots__ = ("episode_id",)
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    def __init__(self, episode_id: _Optional[str] = ...) -> None: ...

class GetEpisodeRequest(_message.Message):
    __slots__ = ("episode_id",)
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    def __init__(self, episode_id: _Optional[str] = ...) -> None: ...

class WatchEpisodeRequest(_message.Message):
    __slots__ = ("episode_id", "timeout_s")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    timeout_s: float
    def __init__(self, episode_id: _Optional[str] = ..., timeout_s: _Optional[float] = ...) -> None: ...
