"""Accepting a job: read and check its problem set, write what it will run to its results
directory, and hand it to the controller through Redis. Blocking; the front door runs it in
a thread.

What is written before the job exists in Redis (`manifest.json`, `problems.parquet`) is
what makes it durable: if Redis later loses the job, submitting the same idempotency key
again finds the manifest, rebuilds the job's state from its results (what is written stays
written) and runs only what is missing.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from services.common.errors import FailedPrecondition, require
from services.orchestrator import results
from services.orchestrator.jobs import (
    JobStore,
    arm_defaults,
    arm_name,
    job_id_for,
    merged_options,
)
from services.orchestrator.problemsets import (
    FORMATS,
    ProblemSet,
    load_problem_set,
    problem_set_from_problems,
    problems_table,
)
from services.orchestrator.url_policy import check_url_allowed
from services.orchestrator.validate import validate_submit, with_defaults
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb

MAX_SAMPLES = 1024


@dataclass(frozen=True)
class JobLimits:
    results_url: str
    max_job_episodes: int
    max_question_chars: int
    max_total_tokens: int
    default_max_total_tokens: int
    default_max_tool_calls: int
    default_max_tool_output_chars: int
    # Where problem sets may be read and results written (url_policy.py); None: anywhere.
    allowed_url_prefixes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Provenance:
    """What the job ran on, for its manifest: the served model and the hint library."""

    model: str
    hint_library: str


def validate_job(request: opb.SubmitJobRequest, limits: JobLimits) -> None:
    names = ", ".join(opb.Arm.Name(a) for a in (opb.ARM_GREEDY, opb.ARM_HINT_INFER, opb.ARM_SAMPLE))
    require(request.arm in (opb.ARM_GREEDY, opb.ARM_HINT_INFER, opb.ARM_SAMPLE), "arm", f"set one of {names}")
    require(0 <= request.samples <= MAX_SAMPLES, "samples", f"must be in [0, {MAX_SAMPLES}] (0: the arm's default)")
    require(request.limit >= 0, "limit", "must be >= 0 (0: every problem)")
    require(len(request.idempotency_key) <= 256, "idempotency_key", "at most 256 characters")
    which = request.WhichOneof("problems")
    require(which is not None, "problems", "send problem_set (a URL) or inline problems")
    if which == "problem_set":
        require(bool(request.problem_set.url.strip()), "problem_set.url", "empty; a path or fsspec URL")
        check_url_allowed("problem_set.url", request.problem_set.url, limits.allowed_url_prefixes)
        fmt = request.problem_set.format.lower()
        require(fmt in ("", *FORMATS), "problem_set.format", f"{fmt!r} unknown; use one of {', '.join(FORMATS)}")
    else:
        require(len(request.inline.problems) > 0, "inline.problems", "empty; send at least one problem")
    if request.results_url:
        allowed = limits.allowed_url_prefixes
        if allowed is not None:
            allowed = (*allowed, limits.results_url)  # the operator's own results root, always
        check_url_allowed("results_url", request.results_url, allowed)


def read_problem_set(request: opb.SubmitJobRequest) -> ProblemSet:
    if request.WhichOneof("problems") == "problem_set":
        ref = request.problem_set
        problem_set = load_problem_set(
            ref.url, ref.format, skip_bad_rows=ref.skip_bad_rows, shuffle_seed=ref.shuffle_seed, limit=request.limit
        )
    else:
        problems = list(request.inline.problems)[: request.limit or None]
        problem_set = problem_set_from_problems(problems)
    require(len(problem_set.problems) > 0, "problems", "no problem left to run")
    return problem_set


def check_question_lengths(problem_set: ProblemSet, max_question_chars: int) -> None:
    """Every question within the front door's limit (a single episode's limit), named by row."""
    for index, problem in enumerate(problem_set.problems):
        require(
            len(problem.question) <= max_question_chars,
            "problems",
            f"problem {index} ({problem.id}): question of {len(problem.question)} characters; "
            f"at most {max_question_chars}",
        )


def effective_options(request: opb.SubmitJobRequest, limits: JobLimits, sample_problem: pb.Problem) -> tuple:
    defaults, samples = arm_defaults(request.arm, request.samples)
    options = merged_options(defaults, request.options)
    # The same checks and defaults as a single episode (one definition of a valid option).
    validate_submit(
        opb.SubmitEpisodeRequest(problem=sample_problem, options=options),
        limits.max_question_chars,
        limits.max_total_tokens,
    )
    options = with_defaults(
        options, limits.default_max_total_tokens, limits.default_max_tool_calls, limits.default_max_tool_output_chars
    )
    return options, samples


def submit_job(
    request: opb.SubmitJobRequest, limits: JobLimits, jobs: JobStore, provenance: Provenance
) -> tuple[opb.Job, bool]:
    """The job for the request, and whether it is new (False: the key named an existing one)."""
    validate_job(request, limits)
    job_id = job_id_for(request.idempotency_key)
    job_url = results.join(request.results_url or limits.results_url, job_id)
    existing = jobs.get(job_id)
    if existing is not None:
        _check_same(request, existing)
        return existing, False
    if request.idempotency_key and results.manifest_exists(job_url):
        return resume_from_results(job_url, jobs), False

    problem_set = read_problem_set(request)
    check_question_lengths(problem_set, limits.max_question_chars)
    options, samples = effective_options(request, limits, problem_set.problems[0])
    episodes = len(problem_set.problems) * samples
    require(
        episodes <= limits.max_job_episodes,
        "samples",
        f"{len(problem_set.problems)} problems x {samples} samples = {episodes} episodes; "
        f"at most {limits.max_job_episodes} per job: split the problem set",
    )
    now = time.time()
    job = opb.Job(
        id=job_id,
        status=opb.JOB_STATUS_RUNNING,
        arm=request.arm,
        samples=samples,
        options=options,
        results_url=job_url,
        created_unix=now,
        problem_set=problem_set.source,
        problem_set_sha256=problem_set.sha256,
        skipped=[opb.SkippedRow(row=b.row, field=b.field, message=b.message) for b in problem_set.skipped],
    )
    job.counts.problems = len(problem_set.problems)
    job.counts.episodes = episodes
    table = problems_table(problem_set.problems, problem_set.metadata_columns)
    results.write_bytes_atomic(results.join(job_url, results.PROBLEMS), results.table_bytes(table))
    results.write_manifest(job_url, manifest_of(job, problem_set, request, provenance))
    created = jobs.create(job)
    return (jobs.get(job_id) or job), created


def _check_same(request: opb.SubmitJobRequest, existing: opb.Job) -> None:
    if request.arm != existing.arm:
        raise FailedPrecondition(
            f"idempotency_key {request.idempotency_key!r} names job {existing.id}, which runs the "
            f"{arm_name(existing.arm)} arm; use another key for a {arm_name(request.arm)} job"
        )


def resume_from_results(job_url: str, jobs: JobStore) -> opb.Job:
    """Rebuild a job Redis lost from its results directory; returns it running again."""
    manifest = results.read_manifest(job_url)
    job = json_format.ParseDict(manifest["job"], opb.Job(), ignore_unknown_fields=True)
    samples = max(1, job.samples)
    table = results.read_results(
        job_url, columns=["problem_index", "sample_index", "status", "correct", "generated_tokens", "tool_calls"]
    )
    rows = table.to_pylist()
    written = sorted({r["problem_index"] * samples + r["sample_index"] for r in rows})
    counts = {
        "written": len(written),
        "done": sum(r["status"] == "done" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "cancelled": sum(r["status"] == "cancelled" for r in rows),
        "correct": sum(bool(r["correct"]) and r["status"] == "done" for r in rows),
        "tokens": sum(r["generated_tokens"] or 0 for r in rows),
        "tool_calls": sum(r["tool_calls"] or 0 for r in rows),
    }
    parts = results.part_urls(job_url)
    seq = max((results.part_seq(u) for u in parts), default=-1) + 1
    job.status = opb.JOB_STATUS_RUNNING
    job.finished_unix = 0
    jobs.restore(job, written, seq, counts)
    restored = jobs.get(job.id)
    assert restored is not None
    return restored


def manifest_of(
    job: opb.Job, problem_set: ProblemSet, request: opb.SubmitJobRequest, provenance: Provenance
) -> dict:
    return {
        "job_id": job.id,
        "job": json_format.MessageToDict(job, preserving_proto_field_name=True),
        "arm": arm_name(job.arm),
        "samples": job.samples,
        "options": json_format.MessageToDict(job.options, preserving_proto_field_name=True),
        "problem_set": problem_set.source,
        "format": problem_set.format,
        "shuffle_seed": problem_set.shuffle_seed,
        "problem_set_sha256": problem_set.sha256,
        "problems": len(problem_set.problems),
        "episodes": job.counts.episodes,
        "limit": request.limit,
        "skipped_rows": [{"row": b.row, "field": b.field, "message": b.message} for b in problem_set.skipped],
        "metadata_columns": list(problem_set.metadata_columns),
        "model": provenance.model,
        "model_revision": os.environ.get("START_MODEL_REVISION", ""),
        "hint_library": provenance.hint_library,
        "code_revision": code_revision(),
        "idempotency_key": request.idempotency_key,
        "created_unix": job.created_unix,
        "status": "running",
    }


def code_revision() -> str:
    """The platform's code revision: START_CODE_REVISION (images set it), else git's, else the version."""
    if os.environ.get("START_CODE_REVISION"):
        return os.environ["START_CODE_REVISION"]
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return f"start-platform {version('start-platform')}"
