from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_TYPE_UNSPECIFIED: _ClassVar[TaskType]
    TASK_TYPE_MATH: _ClassVar[TaskType]
    TASK_TYPE_MULTIPLE_CHOICE: _ClassVar[TaskType]
    TASK_TYPE_CODE: _ClassVar[TaskType]

class SpanKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPAN_KIND_UNSPECIFIED: _ClassVar[SpanKind]
    SPAN_KIND_PROMPT: _ClassVar[SpanKind]
    SPAN_KIND_MODEL: _ClassVar[SpanKind]
    SPAN_KIND_HINT: _ClassVar[SpanKind]
    SPAN_KIND_TOOL_CODE: _ClassVar[SpanKind]
    SPAN_KIND_TOOL_OUTPUT: _ClassVar[SpanKind]

class EpisodeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EPISODE_STATUS_UNSPECIFIED: _ClassVar[EpisodeStatus]
    EPISODE_STATUS_PENDING: _ClassVar[EpisodeStatus]
    EPISODE_STATUS_RUNNING: _ClassVar[EpisodeStatus]
    EPISODE_STATUS_DONE: _ClassVar[EpisodeStatus]
    EPISODE_STATUS_FAILED: _ClassVar[EpisodeStatus]
    EPISODE_STATUS_CANCELLED: _ClassVar[EpisodeStatus]

class ActionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_KIND_UNSPECIFIED: _ClassVar[ActionKind]
    ACTION_KIND_GENERATE: _ClassVar[ActionKind]
    ACTION_KIND_RUN_TOOL: _ClassVar[ActionKind]
    ACTION_KIND_FINISH: _ClassVar[ActionKind]
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_MATH: TaskType
TASK_TYPE_MULTIPLE_CHOICE: TaskType
TASK_TYPE_CODE: TaskType
SPAN_KIND_UNSPECIFIED: SpanKind
SPAN_KIND_PROMPT: SpanKind
SPAN_KIND_MODEL: SpanKind
SPAN_KIND_HINT: SpanKind
SPAN_KIND_TOOL_CODE: SpanKind
SPAN_KIND_TOOL_OUTPUT: SpanKind
EPISODE_STATUS_UNSPECIFIED: EpisodeStatus
EPISODE_STATUS_PENDING: EpisodeStatus
EPISODE_STATUS_RUNNING: EpisodeStatus
EPISODE_STATUS_DONE: EpisodeStatus
EPISODE_STATUS_FAILED: EpisodeStatus
EPISODE_STATUS_CANCELLED: EpisodeStatus
ACTION_KIND_UNSPECIFIED: ActionKind
ACTION_KIND_GENERATE: ActionKind
ACTION_KIND_RUN_TOOL: ActionKind
ACTION_KIND_FINISH: ActionKind

class Span(_message.Message):
    __slots__ = ("kind", "text", "hint_id", "hint_category", "token_ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HINT_ID_FIELD_NUMBER: _ClassVar[int]
    HINT_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: SpanKind
    text: str
    hint_id: str
    hint_category: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, kind: _Optional[_Union[SpanKind, str]] = ..., text: _Optional[str] = ..., hint_id: _Optional[str] = ..., hint_category: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class TestCase(_message.Message):
    __slots__ = ("input", "expected_output", "fn_name", "args_json", "expected_json")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FN_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_JSON_FIELD_NUMBER: _ClassVar[int]
    input: str
    expected_output: str
    fn_name: str
    args_json: str
    expected_json: str
    def __init__(self, input: _Optional[str] = ..., expected_output: _Optional[str] = ..., fn_name: _Optional[str] = ..., args_json: _Optional[str] = ..., expected_json: _Optional[str] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("id", "question", "reference", "task_type", "tests", "choices", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    question: str
    reference: str
    task_type: TaskType
    tests: _containers.RepeatedCompositeFieldContainer[TestCase]
    choices: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., question: _Optional[str] = ..., reference: _Optional[str] = ..., task_type: _Optional[_Union[TaskType, str]] = ..., tests: _Optional[_Iterable[_Union[TestCase, _Mapping]]] = ..., choices: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "cached_prompt_tokens", "completion_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens", "stop", "include_stop_str_in_output", "seed", "n", "logprobs", "ignore_eos")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_STOP_STR_IN_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    include_stop_str_in_output: bool
    seed: int
    n: int
    logprobs: int
    ignore_eos: bool
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., include_stop_str_in_output: _Optional[bool] = ..., seed: _Optional[int] = ..., n: _Optional[int] = ..., logprobs: _Optional[int] = ..., ignore_eos: _Optional[bool] = ...) -> None: ...

class EpisodeOptions(_message.Message):
    __slots__ = ("sampling", "hints_enabled", "reflection_hint_probability", "max_think_hints", "max_tool_calls", "seed", "max_total_tokens", "hint_library", "max_tool_output_chars")
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    HINTS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_HINT_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MAX_THINK_HINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HINT_LIBRARY_FIELD_NUMBER: _ClassVar[int]
    MAX_TOOL_OUTPUT_CHARS_FIELD_NUMBER: _ClassVar[int]
    sampling: SamplingParams
    hints_enabled: bool
    reflection_hint_probability: float
    max_think_hints: int
    max_tool_calls: int
    seed: int
    max_total_tokens: int
    hint_library: str
    max_tool_output_chars: int
    def __init__(self, sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., hints_enabled: _Optional[bool] = ..., reflection_hint_probability: _Optional[float] = ..., max_think_hints: _Optional[int] = ..., max_tool_calls: _Optional[int] = ..., seed: _Optional[int] = ..., max_total_tokens: _Optional[int] = ..., hint_library: _Optional[str] = ..., max_tool_output_chars: _Optional[int] = ...) -> None: ...

class Score(_message.Message):
    __slots__ = ("correct", "extracted", "reason")
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    EXTRACTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    correct: bool
    extracted: str
    reason: str
    def __init__(self, correct: _Optional[bool] = ..., extracted: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Episode(_message.Message):
    __slots__ = ("id", "problem", "options", "spans", "status", "steps", "tool_calls", "think_hints", "reflection_hints", "usage", "score", "error", "next_stop", "thinking_done", "created_unix", "finished_unix", "generated_tokens", "next_action", "generation_s", "tool_s", "job_id", "problem_index", "sample_index", "next_max_tokens")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    THINK_HINTS_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_HINTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_STOP_FIELD_NUMBER: _ClassVar[int]
    THINKING_DONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ACTION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_S_FIELD_NUMBER: _ClassVar[int]
    TOOL_S_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    id: str
    problem: Problem
    options: EpisodeOptions
    spans: _containers.RepeatedCompositeFieldContainer[Span]
    status: EpisodeStatus
    steps: int
    tool_calls: int
    think_hints: int
    reflection_hints: int
    usage: Usage
    score: Score
    error: str
    next_stop: _containers.RepeatedScalarFieldContainer[str]
    thinking_done: bool
    created_unix: float
    finished_unix: float
    generated_tokens: int
    next_action: ActionKind
    generation_s: float
    tool_s: float
    job_id: str
    problem_index: int
    sample_index: int
    next_max_tokens: int
    def __init__(self, id: _Optional[str] = ..., problem: _Optional[_Union[Problem, _Mapping]] = ..., options: _Optional[_Union[EpisodeOptions, _Mapping]] = ..., spans: _Optional[_Iterable[_Union[Span, _Mapping]]] = ..., status: _Optional[_Union[EpisodeStatus, str]] = ..., steps: _Optional[int] = ..., tool_calls: _Optional[int] = ..., think_hints: _Optional[int] = ..., reflection_hints: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., score: _Optional[_Union[Score, _Mapping]] = ..., error: _Optional[str] = ..., next_stop: _Optional[_Iterable[str]] = ..., thinking_done: _Optional[bool] = ..., created_unix: _Optional[float] = ..., finished_unix: _Optional[float] = ..., generated_tokens: _Optional[int] = ..., next_action: _Optional[_Union[ActionKind, str]] = ..., generation_s: _Optional[float] = ..., tool_s: _Optional[float] = ..., job_id: _Optional[str] = ..., problem_index: _Optional[int] = ..., sample_index: _Optional[int] = ..., next_max_tokens: _Optional[int] = ...) -> None: ...
