from start.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Arm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARM_UNSPECIFIED: _ClassVar[Arm]
    ARM_GREEDY: _ClassVar[Arm]
    ARM_HINT_INFER: _ClassVar[Arm]
    ARM_SAMPLE: _ClassVar[Arm]

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_DONE: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLING: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]

class SolveEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOLVE_EVENT_KIND_UNSPECIFIED: _ClassVar[SolveEventKind]
    SOLVE_EVENT_KIND_MODEL_DELTA: _ClassVar[SolveEventKind]
    SOLVE_EVENT_KIND_HINT: _ClassVar[SolveEventKind]
    SOLVE_EVENT_KIND_TOOL_CODE: _ClassVar[SolveEventKind]
    SOLVE_EVENT_KIND_TOOL_OUTPUT: _ClassVar[SolveEventKind]
    SOLVE_EVENT_KIND_FINAL: _ClassVar[SolveEventKind]

class EvaluationGroupKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_GROUP_KIND_UNSPECIFIED: _ClassVar[EvaluationGroupKind]
    EVALUATION_GROUP_KIND_OVERALL: _ClassVar[EvaluationGroupKind]
    EVALUATION_GROUP_KIND_SOURCE: _ClassVar[EvaluationGroupKind]
    EVALUATION_GROUP_KIND_TASK_TYPE: _ClassVar[EvaluationGroupKind]
ARM_UNSPECIFIED: Arm
ARM_GREEDY: Arm
ARM_HINT_INFER: Arm
ARM_SAMPLE: Arm
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_DONE: JobStatus
JOB_STATUS_CANCELLING: JobStatus
JOB_STATUS_CANCELLED: JobStatus
SOLVE_EVENT_KIND_UNSPECIFIED: SolveEventKind
SOLVE_EVENT_KIND_MODEL_DELTA: SolveEventKind
SOLVE_EVENT_KIND_HINT: SolveEventKind
SOLVE_EVENT_KIND_TOOL_CODE: SolveEventKind
SOLVE_EVENT_KIND_TOOL_OUTPUT: SolveEventKind
SOLVE_EVENT_KIND_FINAL: SolveEventKind
EVALUATION_GROUP_KIND_UNSPECIFIED: EvaluationGroupKind
EVALUATION_GROUP_KIND_OVERALL: EvaluationGroupKind
EVALUATION_GROUP_KIND_SOURCE: EvaluationGroupKind
EVALUATION_GROUP_KIND_TASK_TYPE: EvaluationGroupKind

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

class EpisodeChange(_message.Message):
    __slots__ = ("episode", "spans_from")
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    SPANS_FROM_FIELD_NUMBER: _ClassVar[int]
    episode: _common_pb2.Episode
    spans_from: int
    def __init__(self, episode: _Optional[_Union[_common_pb2.Episode, _Mapping]] = ..., spans_from: _Optional[int] = ...) -> None: ...

class ProblemSetRef(_message.Message):
    __slots__ = ("url", "format", "skip_bad_rows", "shuffle_seed")
    URL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SKIP_BAD_ROWS_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_SEED_FIELD_NUMBER: _ClassVar[int]
    url: str
    format: str
    skip_bad_rows: bool
    shuffle_seed: int
    def __init__(self, url: _Optional[str] = ..., format: _Optional[str] = ..., skip_bad_rows: _Optional[bool] = ..., shuffle_seed: _Optional[int] = ...) -> None: ...

class InlineProblems(_message.Message):
    __slots__ = ("problems",)
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    problems: _containers.RepeatedCompositeFieldContainer[_common_pb2.Problem]
    def __init__(self, problems: _Optional[_Iterable[_Union[_common_pb2.Problem, _Mapping]]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("problem_set", "inline", "arm", "samples", "options", "idempotency_key", "results_url", "limit")
    PROBLEM_SET_FIELD_NUMBER: _ClassVar[int]
    INLINE_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_URL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    problem_set: ProblemSetRef
    inline: InlineProblems
    arm: Arm
    samples: int
    options: _common_pb2.EpisodeOptions
    idempotency_key: str
    results_url: str
    limit: int
    def __init__(self, problem_set: _Optional[_Union[ProblemSetRef, _Mapping]] = ..., inline: _Optional[_Union[InlineProblems, _Mapping]] = ..., arm: _Optional[_Union[Arm, str]] = ..., samples: _Optional[int] = ..., options: _Optional[_Union[_common_pb2.EpisodeOptions, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., results_url: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SkippedRow(_message.Message):
    __slots__ = ("row", "field", "message")
    ROW_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    row: int
    field: str
    message: str
    def __init__(self, row: _Optional[int] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class JobCounts(_message.Message):
    __slots__ = ("problems", "episodes", "pending", "running", "done", "failed", "cancelled", "written", "correct", "tokens", "tool_calls")
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    problems: int
    episodes: int
    pending: int
    running: int
    done: int
    failed: int
    cancelled: int
    written: int
    correct: int
    tokens: int
    tool_calls: int
    def __init__(self, problems: _Optional[int] = ..., episodes: _Optional[int] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., written: _Optional[int] = ..., correct: _Optional[int] = ..., tokens: _Optional[int] = ..., tool_calls: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "status", "arm", "samples", "options", "counts", "accuracy", "results_url", "created_unix", "finished_unix", "problem_set", "problem_set_sha256", "skipped", "episodes_per_s")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_URL_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_SET_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_SET_SHA256_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    EPISODES_PER_S_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: JobStatus
    arm: Arm
    samples: int
    options: _common_pb2.EpisodeOptions
    counts: JobCounts
    accuracy: float
    results_url: str
    created_unix: float
    finished_unix: float
    problem_set: str
    problem_set_sha256: str
    skipped: _containers.RepeatedCompositeFieldContainer[SkippedRow]
    episodes_per_s: float
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., arm: _Optional[_Union[Arm, str]] = ..., samples: _Optional[int] = ..., options: _Optional[_Union[_common_pb2.EpisodeOptions, _Mapping]] = ..., counts: _Optional[_Union[JobCounts, _Mapping]] = ..., accuracy: _Optional[float] = ..., results_url: _Optional[str] = ..., created_unix: _Optional[float] = ..., finished_unix: _Optional[float] = ..., problem_set: _Optional[str] = ..., problem_set_sha256: _Optional[str] = ..., skipped: _Optional[_Iterable[_Union[SkippedRow, _Mapping]]] = ..., episodes_per_s: _Optional[float] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "created")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    created: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "timeout_s", "interval_s")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    timeout_s: float
    interval_s: float
    def __init__(self, job_id: _Optional[str] = ..., timeout_s: _Optional[float] = ..., interval_s: _Optional[float] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListEpisodesRequest(_message.Message):
    __slots__ = ("job_id", "page_size", "page_token", "full")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    page_size: int
    page_token: str
    full: bool
    def __init__(self, job_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., full: _Optional[bool] = ...) -> None: ...

class EpisodeSummary(_message.Message):
    __slots__ = ("episode_id", "problem_index", "sample_index", "problem_id", "status", "correct", "tokens", "tool_calls", "error")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    problem_index: int
    sample_index: int
    problem_id: str
    status: _common_pb2.EpisodeStatus
    correct: bool
    tokens: int
    tool_calls: int
    error: str
    def __init__(self, episode_id: _Optional[str] = ..., problem_index: _Optional[int] = ..., sample_index: _Optional[int] = ..., problem_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.EpisodeStatus, str]] = ..., correct: _Optional[bool] = ..., tokens: _Optional[int] = ..., tool_calls: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ListEpisodesResponse(_message.Message):
    __slots__ = ("episodes", "full", "next_page_token")
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    episodes: _containers.RepeatedCompositeFieldContainer[EpisodeSummary]
    full: _containers.RepeatedCompositeFieldContainer[_common_pb2.Episode]
    next_page_token: str
    def __init__(self, episodes: _Optional[_Iterable[_Union[EpisodeSummary, _Mapping]]] = ..., full: _Optional[_Iterable[_Union[_common_pb2.Episode, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SolveRequest(_message.Message):
    __slots__ = ("problem", "options")
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    problem: _common_pb2.Problem
    options: _common_pb2.EpisodeOptions
    def __init__(self, problem: _Optional[_Union[_common_pb2.Problem, _Mapping]] = ..., options: _Optional[_Union[_common_pb2.EpisodeOptions, _Mapping]] = ...) -> None: ...

class SolveEvent(_message.Message):
    __slots__ = ("kind", "text", "hint_id", "hint_category", "episode")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HINT_ID_FIELD_NUMBER: _ClassVar[int]
    HINT_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    kind: SolveEventKind
    text: str
    hint_id: str
    hint_category: str
    episode: _common_pb2.Episode
    def __init__(self, kind: _Optional[_Union[SolveEventKind, str]] = ..., text: _Optional[str] = ..., hint_id: _Optional[str] = ..., hint_category: _Optional[str] = ..., episode: _Optional[_Union[_common_pb2.Episode, _Mapping]] = ...) -> None: ...

class EvaluateJobRequest(_message.Message):
    __slots__ = ("job_id", "ks", "allow_partial")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    ks: _containers.RepeatedScalarFieldContainer[int]
    allow_partial: bool
    def __init__(self, job_id: _Optional[str] = ..., ks: _Optional[_Iterable[int]] = ..., allow_partial: _Optional[bool] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("value", "ci_low", "ci_high")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    value: float
    ci_low: float
    ci_high: float
    def __init__(self, value: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ...) -> None: ...

class PassAtK(_message.Message):
    __slots__ = ("k", "metric")
    K_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    k: int
    metric: MetricValue
    def __init__(self, k: _Optional[int] = ..., metric: _Optional[_Union[MetricValue, _Mapping]] = ...) -> None: ...

class EvaluationGroup(_message.Message):
    __slots__ = ("name", "kind", "n", "samples", "pass_at_1", "avg_at_k", "pass_at_k", "pass_at", "tool_calls_per_episode", "tokens_per_episode", "episodes", "failed", "cancelled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PASS_AT_1_FIELD_NUMBER: _ClassVar[int]
    AVG_AT_K_FIELD_NUMBER: _ClassVar[int]
    PASS_AT_K_FIELD_NUMBER: _ClassVar[int]
    PASS_AT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_PER_EPISODE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_EPISODE_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: EvaluationGroupKind
    n: int
    samples: int
    pass_at_1: MetricValue
    avg_at_k: MetricValue
    pass_at_k: MetricValue
    pass_at: _containers.RepeatedCompositeFieldContainer[PassAtK]
    tool_calls_per_episode: float
    tokens_per_episode: float
    episodes: int
    failed: int
    cancelled: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[EvaluationGroupKind, str]] = ..., n: _Optional[int] = ..., samples: _Optional[int] = ..., pass_at_1: _Optional[_Union[MetricValue, _Mapping]] = ..., avg_at_k: _Optional[_Union[MetricValue, _Mapping]] = ..., pass_at_k: _Optional[_Union[MetricValue, _Mapping]] = ..., pass_at: _Optional[_Iterable[_Union[PassAtK, _Mapping]]] = ..., tool_calls_per_episode: _Optional[float] = ..., tokens_per_episode: _Optional[float] = ..., episodes: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("job_id", "job_url", "arm", "samples", "ks", "problem_set", "format", "skipped_rows", "problems", "incomplete_problems", "bootstrap_resamples", "bootstrap_seed", "groups", "evaluation_json")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_URL_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    KS_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_SET_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_ROWS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_RESAMPLES_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_SEED_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_JSON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    job_url: str
    arm: str
    samples: int
    ks: _containers.RepeatedScalarFieldContainer[int]
    problem_set: str
    format: str
    skipped_rows: int
    problems: int
    incomplete_problems: int
    bootstrap_resamples: int
    bootstrap_seed: int
    groups: _containers.RepeatedCompositeFieldContainer[EvaluationGroup]
    evaluation_json: str
    def __init__(self, job_id: _Optional[str] = ..., job_url: _Optional[str] = ..., arm: _Optional[str] = ..., samples: _Optional[int] = ..., ks: _Optional[_Iterable[int]] = ..., problem_set: _Optional[str] = ..., format: _Optional[str] = ..., skipped_rows: _Optional[int] = ..., problems: _Optional[int] = ..., incomplete_problems: _Optional[int] = ..., bootstrap_resamples: _Optional[int] = ..., bootstrap_seed: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[EvaluationGroup, _Mapping]]] = ..., evaluation_json: _Optional[str] = ...) -> None: ...
