"""The jobs controller on a real Redis and real Parquet files: admission bounded in flight,
results written exactly once whatever crashes where, stranded steps queued again, jobs
closed and resumable from their results alone.

Episodes here are finished with the store's own save, the call a worker's last step makes;
the step machinery itself is proven against the real services in test_jobs_end_to_end.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from services.orchestrator import results
from services.orchestrator import store as keys
from services.orchestrator.celery_app import QUEUE_GENERATE, make_celery
from services.orchestrator.controller import Controller, ControllerSettings
from services.orchestrator.job_submit import JobLimits, Provenance, submit_job
from services.orchestrator.jobs import JobStore, episode_id_for, parse_episode_id
from services.orchestrator.store import EpisodeStore
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb

LIMITS = dict(
    max_job_episodes=100_000, max_question_chars=10_000, max_total_tokens=8192,
    default_max_total_tokens=1024, default_max_tool_calls=6, default_max_tool_output_chars=2000,
)


@pytest.fixture
def url(redis_db) -> str:
    return redis_db(9)


@pytest.fixture
def parts(url: str, tmp_path: Path):
    store = EpisodeStore.from_url(url, retry_s=5)
    jobs = JobStore(store.client)
    celery = make_celery(url)
    return store, jobs, celery, JobLimits(results_url=str(tmp_path / "results"), **LIMITS)


def inline_job(n: int, arm: int = opb.ARM_GREEDY, samples: int = 0, key: str = "") -> opb.SubmitJobRequest:
    problems = [
        pb.Problem(id=f"q{i}", question=f"What is {i} + {i}?", reference=str(2 * i), task_type=pb.TASK_TYPE_MATH,
                   metadata={"source": "unit", "difficulty": str(i % 3)})
        for i in range(n)
    ]
    return opb.SubmitJobRequest(inline=opb.InlineProblems(problems=problems), arm=arm, samples=samples,
                                idempotency_key=key)


def finish(store: EpisodeStore, episode_id: str, correct: bool = True, status: int = pb.EPISODE_STATUS_DONE) -> None:
    """What a worker's last step does: save the episode finished, scored."""
    episode = store.load(episode_id)
    step = episode.steps
    episode.spans.add(kind=pb.SPAN_KIND_MODEL, text=f"answer for {episode_id}")
    episode.status, episode.steps = status, step + 1
    episode.score.correct = correct
    episode.generated_tokens = 10
    episode.tool_calls = 1
    episode.finished_unix = time.time()
    assert store.save(episode, expected_step=step)


def queued_steps(store: EpisodeStore) -> int:
    return int(store.client.llen(QUEUE_GENERATE))


def test_admission_keeps_a_bounded_number_of_episodes_in_redis(parts) -> None:
    store, jobs, celery, limits = parts
    job, created = submit_job(inline_job(10, samples=2), limits, jobs, Provenance("micro", "math@1"))
    assert created and job.counts.episodes == 20 and job.samples == 2
    controller = Controller(store, jobs, celery, ControllerSettings(max_in_flight=6, flush_max_wait_s=0.0))
    controller.tick()
    assert jobs.counters(job.id)["admitted"] == 6
    assert queued_steps(store) == 6, "each admitted episode's first step is queued"
    controller.tick()
    assert jobs.counters(job.id)["admitted"] == 6, "nothing more until some leave Redis"
    for flat in range(3):
        finish(store, episode_id_for(job.id, flat // 2, flat % 2))
    controller.tick()  # writes the 3 (they are all that can finish now), then admits 3 more
    controller.tick()
    counters = jobs.counters(job.id)
    assert counters["written"] == 3 and counters["admitted"] == 9
    assert all(store.load(episode_id_for(job.id, f // 2, f % 2)) is None for f in range(3)), "written ones left Redis"


def test_a_job_runs_to_done_with_every_episode_written_once(parts) -> None:
    store, jobs, celery, limits = parts
    job, _ = submit_job(inline_job(7, samples=3), limits, jobs, Provenance("micro", "math@1"))
    controller = Controller(store, jobs, celery, ControllerSettings(max_in_flight=5, flush_min_episodes=2))
    for _ in range(100):
        controller.tick()
        for raw in list(store.client.smembers(keys.INFLIGHT)):
            episode_id = raw.decode()
            if episode_id.startswith(job.id):
                _, problem, sample = parse_episode_id(episode_id)
                finish(store, episode_id, correct=(problem + sample) % 2 == 0)
        if jobs.status(job.id) == "done":
            break
    final = jobs.get(job.id)
    assert final.status == opb.JOB_STATUS_DONE
    assert (final.counts.done, final.counts.written, final.counts.running, final.counts.pending) == (21, 21, 0, 0)
    table = results.read_results(job.results_url)
    pairs = sorted(zip(table["problem_index"].to_pylist(), table["sample_index"].to_pylist(), strict=True))
    assert pairs == [(p, s) for p in range(7) for s in range(3)], "each (problem, sample) exactly once"
    assert final.counts.correct == sum(table["correct"].to_pylist())
    assert set(table["source"].to_pylist()) == {"unit"}, "problem-set columns are carried to the results"
    import duckdb

    pattern = results.join(job.results_url, results.RESULTS_DIR, "*.parquet")
    (rows,) = duckdb.sql(f"select count(*), sum(correct::int) from '{pattern}'").fetchall()
    assert rows == (21, final.counts.correct), "duckdb reads the results folder as one table"
    manifest = results.read_manifest(job.results_url)
    assert manifest["status"] == "done" and manifest["counts"]["written"] == 21
    assert manifest["model"] == "micro" and manifest["hint_library"] == "math@1"
    assert (Path(job.results_url) / "report.md").exists(), "the report is written before the job shows as done"
    assert not store.client.exists(keys.job_finished_key(job.id))


def test_a_writer_that_dies_between_writing_and_committing_writes_the_same_rows_again(parts) -> None:
    store, jobs, celery, limits = parts
    job, _ = submit_job(inline_job(4), limits, jobs, Provenance("", ""))
    controller = Controller(store, jobs, celery, ControllerSettings(flush_min_episodes=100, flush_max_wait_s=1e9))
    controller.tick()
    for index in range(4):
        finish(store, episode_id_for(job.id, index, 0))
    # The crash: a batch is claimed and written, and the commit never happens.
    batch = jobs.claim_batch(job.id, 10)
    episodes = [store.load(i) for i in batch.episode_ids]
    results.write_part(job.results_url, batch.seq, episodes, "greedy", ["difficulty", "source"])
    assert jobs.counters(job.id)["written"] == 0
    controller.tick()  # the next writer finds the claim and writes that batch again, same file
    assert jobs.counters(job.id)["written"] == 4
    assert len(results.part_urls(job.results_url)) == 1
    assert sorted(results.read_results(job.results_url)["problem_index"].to_pylist()) == [0, 1, 2, 3]


def test_a_step_nobody_runs_is_queued_again_after_the_bound(parts) -> None:
    store, jobs, celery, limits = parts
    job, _ = submit_job(inline_job(2), limits, jobs, Provenance("", ""))
    controller = Controller(store, jobs, celery, ControllerSettings(reconcile_after_s=3.0, reconcile_interval_s=0))
    controller.tick()
    store.client.delete(QUEUE_GENERATE)  # the queued steps die with a worker or a Redis restart
    assert controller.reconcile() == 0, "not stalled yet"
    time.sleep(3.2)
    assert controller.reconcile() == 2
    assert queued_steps(store) == 2
    assert controller.reconcile() == 0, "queued again just now: not stalled"


def test_cancel_stops_admission_and_the_job_ends_cancelled(parts) -> None:
    store, jobs, celery, limits = parts
    job, _ = submit_job(inline_job(10), limits, jobs, Provenance("", ""))
    controller = Controller(store, jobs, celery, ControllerSettings(max_in_flight=3, flush_max_wait_s=0.0))
    controller.tick()
    jobs.cancel(job.id)
    for index in range(3):
        finish(store, episode_id_for(job.id, index, 0), status=pb.EPISODE_STATUS_CANCELLED)
    for _ in range(3):
        controller.tick()
    final = jobs.get(job.id)
    assert final.status == opb.JOB_STATUS_CANCELLED
    assert (final.counts.cancelled, final.counts.written, final.counts.pending) == (10, 3, 0)
    assert results.read_results(job.results_url)["status"].to_pylist() == ["cancelled"] * 3


def test_the_same_key_is_the_same_job_and_a_job_redis_lost_resumes_from_its_results(parts, url: str) -> None:
    store, jobs, celery, limits = parts
    request = inline_job(5, key="nightly-eval")
    job, created = submit_job(request, limits, jobs, Provenance("", ""))
    again, created_again = submit_job(request, limits, jobs, Provenance("", ""))
    assert created and not created_again and again.id == job.id
    controller = Controller(store, jobs, celery, ControllerSettings(flush_max_wait_s=0.0))
    controller.tick()
    for index in (0, 1):
        finish(store, episode_id_for(job.id, index, 0))
    controller.tick()
    assert jobs.counters(job.id)["written"] == 2
    redis.Redis.from_url(url).flushdb()  # Redis loses everything
    resumed, created = submit_job(request, limits, jobs, Provenance("", ""))
    assert not created and resumed.id == job.id and resumed.counts.written == 2
    controller = Controller(store, jobs, celery, ControllerSettings(flush_max_wait_s=0.0))
    controller.tick()
    admitted = {parse_episode_id(i.decode())[1] for i in store.client.smembers(keys.INFLIGHT)}
    assert admitted == {2, 3, 4}, "written episodes are never run again"
    for index in (2, 3, 4):
        finish(store, episode_id_for(job.id, index, 0))
    for _ in range(3):
        controller.tick()
    assert jobs.get(job.id).status == opb.JOB_STATUS_DONE
    assert sorted(results.read_results(job.results_url)["problem_index"].to_pylist()) == [0, 1, 2, 3, 4]


def test_a_bad_job_request_names_the_field(parts) -> None:
    store, jobs, celery, limits = parts
    from services.common.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="arm"):
        submit_job(inline_job(1, arm=opb.ARM_UNSPECIFIED), limits, jobs, Provenance("", ""))
    with pytest.raises(InvalidArgument, match="samples"):
        submit_job(inline_job(1, samples=5000), limits, jobs, Provenance("", ""))
    with pytest.raises(InvalidArgument, match="problems"):
        submit_job(opb.SubmitJobRequest(arm=opb.ARM_GREEDY), limits, jobs, Provenance("", ""))
    too_long = inline_job(3)
    too_long.inline.problems[2].question = "x" * 10_001
    with pytest.raises(InvalidArgument, match="problem 2 .* at most 10000"):
        submit_job(too_long, limits, jobs, Provenance("", ""))
    bad_options = inline_job(1)
    bad_options.options.sampling.temperature = 5
    with pytest.raises(InvalidArgument, match="options.sampling.temperature"):
        submit_job(bad_options, limits, jobs, Provenance("", ""))


def test_sample_arm_takes_the_rft_defaults_and_each_sample_its_own_seed(parts) -> None:
    store, jobs, celery, limits = parts
    job, _ = submit_job(inline_job(2, arm=opb.ARM_SAMPLE), limits, jobs, Provenance("", ""))
    assert job.samples == 16
    assert job.options.sampling.temperature == pytest.approx(0.6) and job.options.sampling.top_p == pytest.approx(0.95)
    Controller(store, jobs, celery, ControllerSettings(max_in_flight=32)).tick()
    seeds = {store.load(episode_id_for(job.id, 0, s)).options.sampling.seed for s in range(16)}
    assert len(seeds) == 16
