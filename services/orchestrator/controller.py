"""The jobs controller: admits a job's episodes, writes finished ones to Parquet, re-queues
stranded steps and closes jobs. It runs inside every front door; a Redis lease makes one of
them the leader at a time, and every piece of its work is safe to repeat after a crash.

One `tick()` does, for every active job:

- **admit**: create the next episodes (problem x sample, in order) while fewer than
  `max_in_flight` of the job are in Redis, and queue their first step. An index whose
  result is already written is never created again (store.py's create checks the written
  bitmap atomically), so a rolled-back cursor or a resumed job recomputes nothing.
- **write**: claim a batch of finished episodes under the next part number, write it as
  one Parquet file, then commit (mark written, delete from Redis) in one atomic script. A
  writer that dies between the two leaves the claim, and the next tick writes the same
  batch to the same file name again: each episode lands in exactly one row.
- **close**: once every admitted episode is written (and all were admitted, or the job was
  cancelled), record the final counts in the manifest, write the report, mark it done.

and, every `reconcile_interval_s`, over every episode in flight (jobs or not): an episode
whose state has not moved for `reconcile_after_s` (its message died with a worker or with
a Redis restart, its step gave up on Redis) gets its next step queued again. A duplicate
is harmless: the step's compare-and-set saves it once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from celery import Celery
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from services.common.logs import get_logger
from services.orchestrator import results
from services.orchestrator import store as keys
from services.orchestrator.celery_app import queue_step
from services.orchestrator.jobs import (
    CANCELLED,
    CANCELLING,
    DONE,
    RUNNING,
    Batch,
    JobStore,
    arm_name,
    episode_of,
)
from services.orchestrator.problemsets import problems_from_table
from services.orchestrator.store import TERMINAL, EpisodeStore
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb

log = get_logger("orchestrator.controller")

ROWS_WRITTEN = Counter("start_results_rows_written_total", "Episodes written to job results")
WRITE_SECONDS = Histogram(
    "start_results_write_seconds", "Time to write one results part", buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)
REQUEUED = Counter("start_reconciler_requeued_total", "Stranded steps the reconciler queued again", ["why"])

# KEYS[1] leader key; ARGV: holder, lease ms. Take the lease, or renew it when we hold it.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


@dataclass
class ControllerSettings:
    max_in_flight: int = 2048  # episodes of one job in Redis at once (bounds Redis memory)
    admit_batch: int = 512  # episodes created per job per tick at most
    flush_min_episodes: int = 256  # write a part once this many finished episodes wait...
    flush_max_wait_s: float = 10.0  # ...or once the oldest has waited this long
    flush_max_episodes: int = 1024  # rows per part at most
    reconcile_after_s: float = 900.0  # a step not moved for this long is queued again
    reconcile_interval_s: float = 5.0
    lease_s: float = 15.0  # leadership lapses this long after its holder stops renewing it


@dataclass
class _JobCache:
    job: opb.Job
    problems: list[pb.Problem]
    metadata_columns: list[str]


@dataclass
class Controller:
    store: EpisodeStore
    jobs: JobStore
    celery: Celery
    settings: ControllerSettings = field(default_factory=ControllerSettings)
    holder: str = field(default_factory=lambda: uuid.uuid4().hex)
    _cache: dict[str, _JobCache] = field(default_factory=dict)
    _waiting_since: dict[str, float] = field(default_factory=dict)
    _last_reconcile: float = 0.0

    def __post_init__(self) -> None:
        self._lead = self.store.client.register_script(_LEAD)

    # -- leadership ------------------------------------------------------------------------

    def lead(self) -> bool:
        lease_ms = int(self.settings.lease_s * 1000)
        return bool(self._lead(keys=[keys.CONTROLLER_LEADER], args=[self.holder, lease_ms]))

    def tick(self) -> None:
        """One round of work, when this process leads; Redis errors end the round early."""
        try:
            if not self.lead():
                return
            for job_id in self.jobs.active_ids():
                self.run_job(job_id)
            if time.monotonic() - self._last_reconcile >= self.settings.reconcile_interval_s:
                self.reconcile()
                self._last_reconcile = time.monotonic()
        except RedisError as exc:
            log.warning("controller: redis unavailable; next round retries", error=str(exc))

    def run_job(self, job_id: str) -> None:
        try:
            cached = self._job(job_id)
        except FileNotFoundError as exc:
            log.error("job's problems are gone from its results; cannot admit", job_id=job_id, error=str(exc))
            return
        status = self.jobs.status(job_id)
        if status == RUNNING:
            self.admit(cached)
        self.write(cached)
        if status in (RUNNING, CANCELLING):
            self.close_if_finished(cached, status)

    def _job(self, job_id: str) -> _JobCache:
        cached = self._cache.get(job_id)
        if cached is None:
            job = self.jobs.get(job_id)
            if job is None:
                raise FileNotFoundError(f"job {job_id} has no state in Redis")
            manifest = results.read_manifest(job.results_url)
            columns = list(manifest.get("metadata_columns", []))
            problems = problems_from_table(read_problems_table(job.results_url), columns)
            cached = self._cache[job_id] = _JobCache(job, problems, columns)
        return cached

    # -- admission -------------------------------------------------------------------------

    def admit(self, cached: _JobCache) -> int:
        job, samples = cached.job, max(1, cached.job.samples)
        counters = self.jobs.counters(job.id)
        in_redis = counters["admitted"] - counters["written"]  # running, or finished and not yet written
        room = min(self.settings.max_in_flight - in_redis, self.settings.admit_batch)
        cursor, total = counters["cursor"], counters["total"]
        count = max(0, min(room, total - cursor))
        if count == 0:
            return 0
        created = 0
        for flat in range(cursor, cursor + count):
            problem_index, sample_index = divmod(flat, samples)
            episode = episode_of(job, cached.problems[problem_index], problem_index, sample_index)
            outcome = self.store.create(episode, flat_index=flat)
            if outcome == 1 or (outcome == 0 and self.store.queued_step(episode.id) < 0):
                queue_step(self.celery, self.store, episode.id, 0, pb.ACTION_KIND_UNSPECIFIED)
                created += outcome == 1
        self.jobs.advance_cursor(job.id, cursor, cursor + count)
        return created

    # -- results ---------------------------------------------------------------------------

    def write(self, cached: _JobCache, force: bool = False) -> int:
        """Write the job's finished episodes when enough wait, or they waited long enough."""
        job_id, written = cached.job.id, 0
        while True:
            waiting = self.jobs.finished_waiting(job_id)
            if not (force or self.jobs.pending_batches(job_id) or self._due(job_id, waiting)):
                return written
            batch = self.jobs.claim_batch(job_id, self.settings.flush_max_episodes)
            if batch is None:
                self._waiting_since.pop(job_id, None)
                return written
            written += self._write_batch(cached, batch)
            force = False

    def _due(self, job_id: str, waiting: int) -> bool:
        if waiting == 0:
            self._waiting_since.pop(job_id, None)
            return False
        if waiting >= self.settings.flush_min_episodes:
            return True
        since = self._waiting_since.setdefault(job_id, time.monotonic())
        if time.monotonic() - since >= self.settings.flush_max_wait_s:
            return True
        # Nothing else will finish soon: the job's last episodes should not wait.
        counters = self.jobs.counters(job_id)
        finished = counters["done"] + counters["failed"] + counters["cancelled"]
        all_admitted = counters["cursor"] >= counters["total"] or self.jobs.status(job_id) != RUNNING
        return all_admitted and finished >= counters["admitted"]

    def _write_batch(self, cached: _JobCache, batch: Batch) -> int:
        job = cached.job
        started = time.perf_counter()
        episodes = []
        for episode_id in batch.episode_ids:
            episode = self.store.load(episode_id)
            if episode is None:  # committed already by an earlier try of this batch
                continue
            episodes.append(episode)
        if episodes:
            results.write_part(job.results_url, batch.seq, episodes, arm_name(job.arm), cached.metadata_columns)
        samples = max(1, job.samples)
        flat = [e.problem_index * samples + e.sample_index for e in episodes]
        present = [e.id for e in episodes]
        self.jobs.commit_batch(job.id, Batch(seq=batch.seq, episode_ids=present), flat)
        elapsed = time.perf_counter() - started
        self.jobs.client.hincrbyfloat(keys.job_key(job.id), "writer_s", elapsed)
        WRITE_SECONDS.observe(elapsed)
        ROWS_WRITTEN.inc(len(episodes))
        return len(episodes)

    # -- closing ---------------------------------------------------------------------------

    def close_if_finished(self, cached: _JobCache, status: str) -> bool:
        job_id = cached.job.id
        counters = self.jobs.counters(job_id)
        all_admitted = counters["cursor"] >= counters["total"]
        if status == RUNNING and not all_admitted:
            return False
        if counters["written"] < counters["admitted"] or self.jobs.pending_batches(job_id):
            return False
        final = DONE if status == RUNNING else CANCELLED
        finished = time.time()
        # Manifest and report first: a client that sees the job ended finds them written.
        # A crash in between repeats this round, which writes them again.
        self._record_final(cached, final, finished)
        self.jobs.set_status(job_id, final, finished_unix=finished)
        self.jobs.deactivate(job_id)
        self._cache.pop(job_id, None)
        log.info("job finished", job_id=job_id, status=final, written=counters["written"])
        return True

    def _record_final(self, cached: _JobCache, final: str, finished_unix: float) -> None:
        job = cached.job
        counters = self.jobs.counters(job.id)
        never_started = counters["total"] - counters["admitted"] if final == CANCELLED else 0
        manifest = results.read_manifest(job.results_url)
        manifest["status"] = final
        manifest["finished_unix"] = finished_unix
        manifest["counts"] = {
            "done": counters["done"],
            "failed": counters["failed"],
            "cancelled": counters["cancelled"] + never_started,
            "written": counters["written"],
            "correct": counters["correct"],
        }
        writer_s = self.jobs.client.hget(keys.job_key(job.id), "writer_s")
        manifest["writer_seconds"] = float(writer_s or 0.0)
        results.write_manifest(job.results_url, manifest)
        try:
            from services.orchestrator.report import write_report

            write_report(job.results_url)
        except Exception as exc:  # noqa: BLE001 - a report that cannot be drawn must not hold the job open
            log.exception("job report failed", job_id=job.id, error=str(exc))

    # -- reconciliation --------------------------------------------------------------------

    def reconcile(self) -> int:
        """Queue again the next step of every in-flight episode that has not moved for
        `reconcile_after_s`."""
        now, requeued = time.time(), 0
        for raw in self.store.client.sscan_iter(keys.INFLIGHT, count=500):
            episode_id = raw.decode()
            step, queued, touched = self.store.client.hmget(keys.episode_key(episode_id), "step", "queued", "touched")
            if step is None:  # written and gone, or expired: nothing in flight
                self.store.client.srem(keys.INFLIGHT, episode_id)
                continue
            if now - float(touched or 0) < self.settings.reconcile_after_s:
                continue
            episode = self.store.load(episode_id)
            if episode is None:
                continue
            if episode.status in TERMINAL:
                self.store.client.srem(keys.INFLIGHT, episode_id)
                continue
            queue_step(self.celery, self.store, episode.id, episode.steps, episode.next_action)
            # Queued again now: touched moves, so it is not re-queued again for a while.
            self.store.client.hset(keys.episode_key(episode_id), "touched", now)
            REQUEUED.labels("stalled").inc()
            log.info("reconciler queued a stalled step", episode_id=episode_id, step=episode.steps,
                     queued=int(queued or -1))
            requeued += 1
        return requeued


def read_problems_table(job_url: str):  # noqa: ANN201 - a pyarrow.Table
    import pyarrow.parquet as pq

    fs, path = results.filesystem(results.join(job_url, results.PROBLEMS))
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle)
