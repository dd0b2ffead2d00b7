"""Checks on episode submissions, once, at the edge, and the defaults they are given.

An accepted episode records its effective options (defaults filled in), so that the run
can be replayed from the episode alone.
"""

from __future__ import annotations

import re

from services.common.errors import require
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb

_EPISODE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_TASK_TYPES = (pb.TASK_TYPE_MATH, pb.TASK_TYPE_MULTIPLE_CHOICE, pb.TASK_TYPE_CODE)


def validate_episode_id(episode_id: str, field: str = "episode_id") -> None:
    require(
        bool(_EPISODE_ID.match(episode_id)),
        field,
        f"{episode_id[:40]!r} is not an id; use 1-128 characters of letters, digits and _ . : -",
    )


_JOB_ID = re.compile(r"^job-[0-9a-f]{16}$")


def validate_job_id(job_id: str) -> None:
    require(bool(_JOB_ID.match(job_id)), "job_id", f"{job_id[:40]!r} is not a job id (job- and 16 hex digits)")


def validate_submit(request: opb.SubmitEpisodeRequest, max_question_chars: int, max_total_tokens: int) -> None:
    if request.episode_id:
        validate_episode_id(request.episode_id)
    validate_problem_and_options(request.problem, request.options, max_question_chars, max_total_tokens)


def validate_problem_and_options(
    problem: pb.Problem, options: pb.EpisodeOptions, max_question_chars: int, max_total_tokens: int
) -> None:
    """The fields every way of running an episode shares (SubmitEpisode, Solve): both name
    them `problem` and `options`, so the messages name the right field for either."""
    require(bool(problem.question.strip()), "problem.question", "empty; send the question to solve")
    require(
        len(problem.question) <= max_question_chars,
        "problem.question",
        f"{len(problem.question)} characters; at most {max_question_chars}",
    )
    names = ", ".join(pb.TaskType.Name(t) for t in _TASK_TYPES)
    require(problem.task_type in _TASK_TYPES, "problem.task_type", f"{problem.task_type} unknown; use one of {names}")
    sampling = options.sampling
    require(0.0 <= sampling.temperature <= 2.0, "options.sampling.temperature", "must be in [0, 2] (0 is greedy)")
    require(0.0 <= sampling.top_p <= 1.0, "options.sampling.top_p", "must be in [0, 1] (0 reads as 1)")
    require(sampling.max_tokens >= 0, "options.sampling.max_tokens", "must be >= 0 (0: no per-call cap)")
    require(sampling.n in (0, 1), "options.sampling.n", "an episode is one sample: use 0 or 1, submit more episodes")
    require(not sampling.stop, "options.sampling.stop", "must be empty; the hint policy sets the stop strings")
    require(
        0.0 <= options.reflection_hint_probability <= 1.0,
        "options.reflection_hint_probability",
        "must be a probability in [0, 1]",
    )
    require(0 <= options.max_think_hints <= 64, "options.max_think_hints", "must be in [0, 64]")
    require(0 <= options.max_tool_calls <= 64, "options.max_tool_calls", "must be in [0, 64] (0: the default, 6)")
    require(
        0 <= options.max_total_tokens <= max_total_tokens,
        "options.max_total_tokens",
        f"must be in [0, {max_total_tokens}] (0: the service default)",
    )
    require(
        0 <= options.max_tool_output_chars <= 1_000_000,
        "options.max_tool_output_chars",
        "must be in [0, 1000000] (0: the service default)",
    )


def with_defaults(
    options: pb.EpisodeOptions, max_total_tokens: int, max_tool_calls: int, max_tool_output_chars: int
) -> pb.EpisodeOptions:
    effective = pb.EpisodeOptions()
    effective.CopyFrom(options)
    effective.max_total_tokens = options.max_total_tokens or max_total_tokens
    effective.max_tool_calls = options.max_tool_calls or max_tool_calls
    effective.max_tool_output_chars = options.max_tool_output_chars or max_tool_output_chars
    effective.sampling.top_p = options.sampling.top_p or 1.0
    effective.sampling.n = 1
    return effective
