"""The Celery task that runs an episode: `episode.step(episode_id, step_no)`.

A step is small and idempotent. It loads the episode from the store; if the episode is
already past step_no (the step ran, and its worker died before acking), it only makes
sure the next step is queued; otherwise it takes ONE step (`steps.take_step`) and saves
it with a compare-and-set on the step counter, so a step run twice is saved once. Then
it takes the next step itself, saving after each, for up to `chain_s` (no broker hop, no
reload: most of a step's platform time), and queues the step it stops at. Steps of a
kind this worker does not consume go to their queue at once. Errors a retry may cure (a
peer UNAVAILABLE, a deadline) are retried with jittered exponential back-off; after the
last retry, or on any other error, the episode is marked FAILED with the error. Each call's
deadline is what is left of the episode's wall-clock budget (`episode_budget_s`), within
`rpc_timeout_s`; a step past the budget ends the episode (steps.take_step).

An episode whose job was cancelled is recorded as CANCELLED at its next step instead. Redis
commands ride out a Redis restart (store.blocking_redis); a step that still meets a broken
Redis gives up quietly and the controller's reconciler queues it again once Redis is back.

Workers build their store and peers once per process from the environment
(`START_WORKER_*`, `START_REDIS_URL`, `START_<PEER>_ADDR`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import RedisError

from services.common.logs import get_logger
from services.common.settings import PeerAddresses
from services.orchestrator.celery_app import STEP_TASK, WorkerSettings, celery_config, make_celery, queue_step
from services.orchestrator.jobs import CANCELLED, CANCELLING, JobStore
from services.orchestrator.peers import Peers, describe, is_busy, is_transient
from services.orchestrator.steps import end_early, take_step
from services.orchestrator.store import TERMINAL, EpisodeStore, status_counter
from services.orchestrator.worker_metrics import EPISODES_FINISHED, PLATFORM_SECONDS, STEP_SECONDS, STEPS
from start.v1 import common_pb2 as pb

log = get_logger("orchestrator.tasks")


@dataclass(frozen=True)
class WorkerContext:
    settings: WorkerSettings
    store: EpisodeStore
    jobs: JobStore
    peers: Peers


# Configured from the environment at import, so `celery -A services.orchestrator.tasks
# worker` works too; `startctl worker` calls configure() again with its flags on top.
app = make_celery(PeerAddresses().redis_url)
_context: dict[str, WorkerContext] = {}


def configure(settings: WorkerSettings, addresses: PeerAddresses) -> Celery:
    """Point the app, the store and the peers of this worker process at their settings."""
    app.conf.update(celery_config(addresses.redis_url, settings))
    store = EpisodeStore.from_url(addresses.redis_url, settings.finished_ttl_s, settings.redis_retry_s)
    _context["worker"] = WorkerContext(
        settings=settings, store=store, jobs=JobStore(store.client), peers=Peers(addresses, settings.rpc_timeout_s)
    )
    return app


def context() -> WorkerContext:
    if "worker" not in _context:
        configure(WorkerSettings(), PeerAddresses())
    return _context["worker"]


def ensure_next_step_queued(ctx: WorkerContext, episode: pb.Episode) -> None:
    """Queue the episode's next step unless it is finished or that step was queued already."""
    if episode.status in TERMINAL or ctx.store.queued_step(episode.id) >= episode.steps:
        return
    queue_step(app, ctx.store, episode.id, episode.steps, episode.next_action)


def mark_failed(ctx: WorkerContext, episode_id: str, step_no: int, error: str) -> None:
    episode = ctx.store.load(episode_id)
    if episode is None or episode.steps != step_no or episode.status in TERMINAL:
        return
    end_early(episode, pb.EPISODE_STATUS_FAILED, error)
    if ctx.store.save(episode, expected_step=step_no):
        EPISODES_FINISHED.labels("failed").inc()
        log.warning("episode failed", episode_id=episode_id, step=step_no, error=error)


def _cancel(ctx: WorkerContext, episode: pb.Episode, step_no: int) -> None:
    """Record the episode as cancelled (its job was): it stops here and is written as such."""
    end_early(episode, pb.EPISODE_STATUS_CANCELLED, f"cancelled with its job at step {step_no}")
    if ctx.store.save(episode, expected_step=step_no):
        EPISODES_FINISHED.labels("cancelled").inc()


@app.task(name=STEP_TASK, bind=True, max_retries=None)
def step(self: Task, episode_id: str, step_no: int, faults: int = 0, busy_since: float = 0.0) -> None:
    """`faults`: retries spent on errors so far; `busy_since`: when a peer first said it was
    full, while it still does (a busy peer is waited out, within `busy_wait_s`, without
    spending the fault retries: 64 episodes at once must not fail on a 2-sandbox pool)."""
    ctx = context()
    try:
        _load_and_step(self, ctx, episode_id, step_no, faults, busy_since)
    except RedisError as exc:
        STEPS.labels("unknown", "redis_error").inc()
        log.warning("redis unavailable; the reconciler will queue the step again", episode_id=episode_id,
                    step=step_no, error=str(exc))


def _load_and_step(self: Task, ctx: WorkerContext, episode_id: str, step_no: int, faults: int,
                   busy_since: float) -> None:
    with PLATFORM_SECONDS.labels("load").time():
        episode = ctx.store.load(episode_id)
    if episode is None:
        log.warning("no such episode", episode_id=episode_id, step=step_no)
        return
    if episode.status in TERMINAL or episode.steps < step_no:
        return
    if episode.steps > step_no:
        STEPS.labels(_action(episode), "duplicate").inc()
        ensure_next_step_queued(ctx, episode)
        return
    chain_until = time.monotonic() + ctx.settings.chain_s
    while True:
        if episode.job_id and ctx.jobs.status(episode.job_id) in (CANCELLED, CANCELLING):
            _cancel(ctx, episode, step_no)
            return
        action = _action(episode)
        started = time.monotonic()
        try:
            outcome = _step(self, ctx, episode, action, step_no, faults, busy_since)
        finally:
            STEP_SECONDS.labels(action).observe(time.monotonic() - started)
        STEPS.labels(action, outcome).inc()
        if outcome != "saved" or episode.status in TERMINAL:
            return
        if time.monotonic() >= chain_until or not ctx.settings.consumes(episode.next_action):
            with PLATFORM_SECONDS.labels("queue").time():
                ensure_next_step_queued(ctx, episode)
            return
        # The next step, here and now: the episode was saved, so a crash from here on
        # loses nothing (this task's message comes back, finds the episode past it and
        # queues the step the episode is at).
        step_no, faults, busy_since = episode.steps, 0, 0.0


def _step(
    self: Task, ctx: WorkerContext, episode: pb.Episode, action: str, step_no: int, faults: int, busy_since: float
) -> str:
    """Take the step and save it; how it ended, for the metrics ("saved": the caller
    takes or queues the next step).

    `action` is the step's label taken before the step ran: a failed step may have changed
    the episode it was given.
    """
    settings, episode_id = ctx.settings, episode.id
    try:
        take_step(episode, ctx.peers, settings.episode_budget_s)
    except Exception as exc:  # noqa: BLE001 - every failure is retried or recorded on the episode
        args = {"episode_id": episode_id, "step_no": step_no, "faults": faults}
        if is_busy(exc):
            since = busy_since or time.time()
            waited = time.time() - since
            if waited < settings.busy_wait_s:
                # Jittered, so that the steps a full peer turned away do not return together.
                delay = random.uniform(0.5, 1.0) * min(settings.busy_backoff_max_s, 0.25 * 2 ** (waited // 2))
                STEPS.labels(action, "busy_wait").inc()
                raise self.retry(args=(), kwargs={**args, "busy_since": since}, countdown=delay) from exc
            mark_failed(
                ctx, episode_id, step_no, f"step {step_no}: a peer stayed busy for {waited:.0f} s: {describe(exc)}"
            )
            return "failed"
        if (is_transient(exc) or isinstance(exc, SoftTimeLimitExceeded)) and faults < settings.max_retries:
            # Jittered, so that the steps one peer's restart failed together do not all come
            # back at the same instant; never under half the back-off, which is what lets a
            # restart finish.
            delay = random.uniform(0.5, 1.0) * min(60.0, settings.retry_backoff_s * 2**faults)
            log.info("retrying step", episode_id=episode_id, step=step_no, retry=faults + 1, error=describe(exc))
            STEPS.labels(action, "fault_retry").inc()
            raise self.retry(args=(), kwargs={**args, "faults": faults + 1}, countdown=delay) from exc
        mark_failed(ctx, episode_id, step_no, f"step {step_no} after {faults} retries: {describe(exc)}")
        return "failed"
    with PLATFORM_SECONDS.labels("save").time():
        saved = ctx.store.save(episode, expected_step=step_no)
    if not saved:
        return "duplicate"  # another run of this step saved first and queued the next one
    if episode.status in TERMINAL:
        EPISODES_FINISHED.labels(status_counter(episode.status)).inc()
    return "saved"


def _action(episode: pb.Episode) -> str:
    """The step's kind as a metrics label: start, generate, run_tool or finish."""
    if episode.status == pb.EPISODE_STATUS_PENDING:
        return "start"
    return pb.ActionKind.Name(episode.next_action).removeprefix("ACTION_KIND_").lower()
