"""A job's episodes, wherever they are now: in Redis while in flight, in the job's Parquet
results once written. ListEpisodes pages through a job in (problem, sample) order and
GetEpisode finds a written one by id."""

from __future__ import annotations

import pyarrow.compute as pc

from services.orchestrator import results
from services.orchestrator.jobs import episode_id_for
from services.orchestrator.store import EpisodeStore
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb

_SUMMARY_COLUMNS = [
    "episode_id", "problem_index", "sample_index", "problem_id", "status", "correct", "generated_tokens",
    "tool_calls", "error",
]


def job_episodes(job_url: str, episode_ids: list[str], full: bool) -> dict[str, pb.Episode]:
    """Written episodes of a job by id (whole when `full`, else with the summary's fields)."""
    if not episode_ids or not results.manifest_exists(job_url):
        return {}
    manifest = results.read_manifest(job_url)
    columns = list(manifest.get("metadata_columns", []))
    table = results.read_results(
        job_url,
        columns=None if full else _SUMMARY_COLUMNS,
        filters=pc.field("episode_id").isin(episode_ids),
    )
    found: dict[str, pb.Episode] = {}
    for row in table.to_pylist():
        if full:
            found[row["episode_id"]] = results.episode_from_row(row, columns)
        else:
            found[row["episode_id"]] = _partial_episode(row)
    return found


def _partial_episode(row: dict) -> pb.Episode:
    return pb.Episode(
        id=row["episode_id"],
        problem=pb.Problem(id=row["problem_id"] or ""),
        problem_index=row["problem_index"],
        sample_index=row["sample_index"],
        status=pb.EpisodeStatus.Value(f"EPISODE_STATUS_{row['status'].upper()}"),
        score=pb.Score(correct=bool(row["correct"])),
        generated_tokens=row["generated_tokens"] or 0,
        tool_calls=row["tool_calls"] or 0,
        error=row["error"] or "",
    )


def summary_of(episode: pb.Episode) -> opb.EpisodeSummary:
    return opb.EpisodeSummary(
        episode_id=episode.id,
        problem_index=episode.problem_index,
        sample_index=episode.sample_index,
        problem_id=episode.problem.id,
        status=episode.status,
        correct=episode.score.correct,
        tokens=episode.generated_tokens,
        tool_calls=episode.tool_calls,
        error=episode.error,
    )


def list_episodes(job: opb.Job, store: EpisodeStore, start: int, size: int, full: bool) -> opb.ListEpisodesResponse:
    """One page of a job's episodes from flat index `start`: in flight from Redis, written
    from the results, not yet started as PENDING."""
    samples = max(1, job.samples)
    stop = min(start + size, job.counts.episodes)
    ids = [episode_id_for(job.id, flat // samples, flat % samples) for flat in range(start, stop)]
    in_redis = {i: e for i in ids if (e := store.load(i)) is not None}
    written = job_episodes(job.results_url, [i for i in ids if i not in in_redis], full)
    reply = opb.ListEpisodesResponse(next_page_token=str(stop) if stop < job.counts.episodes else "")
    for flat, episode_id in zip(range(start, stop), ids, strict=True):
        episode = in_redis.get(episode_id) or written.get(episode_id)
        if episode is None:
            problem_index, sample_index = divmod(flat, samples)
            episode = pb.Episode(
                id=episode_id, problem_index=problem_index, sample_index=sample_index,
                status=pb.EPISODE_STATUS_PENDING, job_id=job.id,
            )
        reply.episodes.append(summary_of(episode))
        if full:
            reply.full.append(episode)
    return reply
