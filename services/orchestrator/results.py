"""A job's results: finished episodes as Parquet files through fsspec, one row per episode.

Where a job's files live (`<results root>/<job id>/`, a local directory or an `s3://` /
`gs://` URL; credentials come from the environment, as fsspec reads them):

    manifest.json             what ran: settings, model, hint library, code, problem-set hash
    problems.parquet          the problem set as the job read it (one row per problem)
    results/part-NNNNNN.parquet   finished episodes, a batch per file, written as they finish
    report.md, plots/*.png    the job's report, written when it ends

Every part file has the same columns (`results_schema`, documented in docs/jobs.md), so
pyarrow, pandas, duckdb and `datasets.load_dataset("parquet", data_files=...)` read the
directory as one table. A part is written whole or not at all (a local file is renamed into
place; an object store's put is atomic), and its name is the batch's sequence number, so
writing the same batch again after a crash replaces the file rather than adding rows.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from google.protobuf import json_format

from start.v1 import common_pb2 as pb

MANIFEST = "manifest.json"
PROBLEMS = "problems.parquet"
RESULTS_DIR = "results"

_SPAN = pa.struct(
    [
        ("kind", pa.string()),
        ("text", pa.string()),
        ("hint_id", pa.string()),
        ("hint_category", pa.string()),
        ("token_ids", pa.list_(pa.int32())),
    ]
)

# A problem as columns: the same in a job's problems.parquet and in its results.
PROBLEM_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("problem_id", pa.string()),
    ("task_type", pa.string()),
    ("question", pa.string()),
    ("reference", pa.string()),
    ("choices", pa.list_(pa.string())),
    ("tests", pa.string()),  # JSON list of the tests
]

# Columns every results file has, in order; a job's metadata columns follow them.
BASE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("job_id", pa.string()),
    ("episode_id", pa.string()),
    ("problem_index", pa.int32()),
    ("sample_index", pa.int32()),
    *PROBLEM_COLUMNS,
    ("arm", pa.string()),
    ("options", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("correct", pa.bool_()),
    ("extracted", pa.string()),
    ("score_reason", pa.string()),
    ("response", pa.string()),
    ("spans", pa.list_(_SPAN)),
    ("steps", pa.int32()),
    ("tool_calls", pa.int32()),
    ("think_hints", pa.int32()),
    ("reflection_hints", pa.int32()),
    ("generated_tokens", pa.int32()),
    ("prompt_tokens", pa.int64()),
    ("cached_prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("created_unix", pa.float64()),
    ("finished_unix", pa.float64()),
    ("generation_s", pa.float64()),
    ("tool_s", pa.float64()),
]
_BASE_NAMES = {name for name, _ in BASE_COLUMNS}


def metadata_column(name: str) -> str:
    """The column of a problem-set column, in problems.parquet and in the results: its own
    name, unless one of ours has it (then `meta_<name>`)."""
    return f"meta_{name}" if name in _BASE_NAMES else name


def results_schema(metadata_columns: Sequence[str] = ()) -> pa.Schema:
    return pa.schema([*BASE_COLUMNS, *((metadata_column(c), pa.string()) for c in metadata_columns)])


def problem_columns(problem: pb.Problem, metadata_columns: Sequence[str] = ()) -> dict[str, Any]:
    """The problem's columns (PROBLEM_COLUMNS, then its metadata columns)."""
    row: dict[str, Any] = {
        "problem_id": problem.id,
        "task_type": task_type_name(problem.task_type),
        "question": problem.question,
        "reference": problem.reference,
        "choices": list(problem.choices),
        "tests": json.dumps([json_format.MessageToDict(t, preserving_proto_field_name=True) for t in problem.tests]),
    }
    for column in metadata_columns:
        row[metadata_column(column)] = problem.metadata.get(column)
    return row


def problem_from_row(row: dict[str, Any], metadata_columns: Sequence[str] = ()) -> pb.Problem:
    """The problem `problem_columns` wrote."""
    problem = pb.Problem(
        id=row["problem_id"] or "",
        question=row["question"] or "",
        reference=row["reference"] or "",
        task_type=pb.TaskType.Value(f"TASK_TYPE_{(row['task_type'] or 'unspecified').upper()}"),
        choices=row["choices"] or [],
        tests=[json_format.ParseDict(t, pb.TestCase()) for t in json.loads(row["tests"] or "[]")],
    )
    for column in metadata_columns:
        value = row.get(metadata_column(column))
        if value is not None:
            problem.metadata[column] = value
    return problem


def status_name(status: int) -> str:
    return pb.EpisodeStatus.Name(status).removeprefix("EPISODE_STATUS_").lower()


def task_type_name(task_type: int) -> str:
    return pb.TaskType.Name(task_type).removeprefix("TASK_TYPE_").lower()


def span_kind_name(kind: int) -> str:
    return pb.SpanKind.Name(kind).removeprefix("SPAN_KIND_").lower()


def _json(message: Any) -> str:
    return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), sort_keys=True)


def episode_row(episode: pb.Episode, arm: str, metadata_columns: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "job_id": episode.job_id,
        "episode_id": episode.id,
        "problem_index": episode.problem_index,
        "sample_index": episode.sample_index,
        **problem_columns(episode.problem, metadata_columns),
        "arm": arm,
        "options": _json(episode.options),
        "status": status_name(episode.status),
        "error": episode.error,
        "correct": episode.score.correct,
        "extracted": episode.score.extracted,
        "score_reason": episode.score.reason,
        "response": "".join(s.text for s in episode.spans if s.kind != pb.SPAN_KIND_PROMPT),
        "spans": [
            {
                "kind": span_kind_name(s.kind),
                "text": s.text,
                "hint_id": s.hint_id,
                "hint_category": s.hint_category,
                "token_ids": list(s.token_ids),
            }
            for s in episode.spans
        ],
        "steps": episode.steps,
        "tool_calls": episode.tool_calls,
        "think_hints": episode.think_hints,
        "reflection_hints": episode.reflection_hints,
        "generated_tokens": episode.generated_tokens,
        "prompt_tokens": episode.usage.prompt_tokens,
        "cached_prompt_tokens": episode.usage.cached_prompt_tokens,
        "completion_tokens": episode.usage.completion_tokens,
        "created_unix": episode.created_unix,
        "finished_unix": episode.finished_unix,
        "generation_s": episode.generation_s,
        "tool_s": episode.tool_s,
    }


def episode_from_row(row: dict[str, Any], metadata_columns: Sequence[str] = ()) -> pb.Episode:
    """The episode a results row was written from (what GetEpisode returns once it left Redis)."""
    problem = problem_from_row(row, metadata_columns)
    episode = pb.Episode(
        id=row["episode_id"],
        problem=problem,
        options=json_format.Parse(row["options"] or "{}", pb.EpisodeOptions()),
        status=pb.EpisodeStatus.Value(f"EPISODE_STATUS_{row['status'].upper()}"),
        steps=row["steps"],
        tool_calls=row["tool_calls"],
        think_hints=row["think_hints"],
        reflection_hints=row["reflection_hints"],
        usage=pb.Usage(
            prompt_tokens=row["prompt_tokens"],
            cached_prompt_tokens=row["cached_prompt_tokens"],
            completion_tokens=row["completion_tokens"],
        ),
        score=pb.Score(
            correct=bool(row["correct"]), extracted=row["extracted"] or "", reason=row["score_reason"] or ""
        ),
        error=row["error"] or "",
        created_unix=row["created_unix"],
        finished_unix=row["finished_unix"],
        generated_tokens=row["generated_tokens"],
        generation_s=row["generation_s"],
        tool_s=row["tool_s"],
        job_id=row["job_id"],
        problem_index=row["problem_index"],
        sample_index=row["sample_index"],
    )
    for span in row["spans"] or []:
        episode.spans.add(
            kind=pb.SpanKind.Value(f"SPAN_KIND_{span['kind'].upper()}"),
            text=span["text"],
            hint_id=span["hint_id"] or "",
            hint_category=span["hint_category"] or "",
            token_ids=span["token_ids"] or [],
        )
    return episode


def join(base: str, *parts: str) -> str:
    """A path under a local directory or an fsspec URL."""
    return posixpath.join(base.rstrip("/"), *parts)


def absolute(path_or_url: str) -> str:
    """A location any process can open: a local path made absolute, a URL (s3://...) as it is."""
    return path_or_url if "://" in path_or_url else str(Path(path_or_url).expanduser().resolve())


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write a whole file or nothing: a local file via a temporary name and a rename; an
    object store's single put is atomic already."""
    fs, path = filesystem(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    if "file" in _protocols(fs):
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with fs.open(tmp, "wb") as out:
            out.write(data)
        fs.mv(tmp, path)
    else:
        with fs.open(path, "wb") as out:
            out.write(data)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def part_name(seq: int) -> str:
    return f"part-{seq:06d}.parquet"


def write_part(
    job_url: str, seq: int, episodes: Iterable[pb.Episode], arm: str, metadata_columns: Sequence[str] = ()
) -> str:
    """Write one batch of finished episodes as results part `seq`; returns its URL."""
    rows = [episode_row(e, arm, metadata_columns) for e in episodes]
    table = pa.Table.from_pylist(rows, schema=results_schema(metadata_columns))
    url = join(job_url, RESULTS_DIR, part_name(seq))
    write_bytes_atomic(url, table_bytes(table))
    return url


def part_urls(job_url: str) -> list[str]:
    fs, path = filesystem(job_url)
    folder = posixpath.join(path, RESULTS_DIR)
    if not fs.exists(folder):
        return []
    names = sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".parquet"))
    return [fs.unstrip_protocol(p) if "file" not in _protocols(fs) else p for p in names]


def part_seq(url: str) -> int:
    return int(posixpath.basename(url).removeprefix("part-").removesuffix(".parquet"))


def read_results(job_url: str, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
    """Every finished episode of a job written so far, as one table."""
    urls = part_urls(job_url)
    fs, _ = filesystem(job_url)
    if not urls:
        return results_schema(read_manifest(job_url).get("metadata_columns", [])).empty_table()
    tables = []
    for url in urls:
        _, path = filesystem(url)
        with fs.open(path, "rb") as handle:
            tables.append(pq.read_table(handle, columns=list(columns) if columns else None, filters=filters))
    return pa.concat_tables(tables, promote_options="default")


def write_manifest(job_url: str, manifest: dict[str, Any]) -> None:
    write_bytes_atomic(join(job_url, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True).encode())


def read_manifest(job_url: str) -> dict[str, Any]:
    fs, path = filesystem(join(job_url, MANIFEST))
    with fs.open(path, "rb") as handle:
        return json.loads(handle.read())


def manifest_exists(job_url: str) -> bool:
    fs, path = filesystem(join(job_url, MANIFEST))
    return fs.exists(path)
