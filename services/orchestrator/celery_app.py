"""The Celery app over Redis and its whole configuration, in one place.

Episodes run as a chain of small `episode.step(episode_id, step_no)` tasks (see
`tasks.py`); each is routed by what the step does to its own queue, so each kind of work
can get its own pool of workers in a cluster:

    start.generate   the first step (prompt rendering) and generation calls
    start.tool       sandbox runs
    start.score      scoring

Reliability: late acks with `task_reject_on_worker_lost` and a prefetch of one, so a
step whose worker dies goes back to the queue (after the Redis transport's visibility
timeout) instead of being lost; JSON only; tasks carry ids, never objects.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.orchestrator.store import EpisodeStore
from start.v1 import common_pb2 as pb

STEP_TASK = "episode.step"
QUEUE_GENERATE = "start.generate"
QUEUE_TOOL = "start.tool"
QUEUE_SCORE = "start.score"
QUEUES = (QUEUE_GENERATE, QUEUE_TOOL, QUEUE_SCORE)

_QUEUE_OF_ACTION = {
    pb.ACTION_KIND_GENERATE: QUEUE_GENERATE,
    pb.ACTION_KIND_RUN_TOOL: QUEUE_TOOL,
    pb.ACTION_KIND_FINISH: QUEUE_SCORE,
}


class WorkerSettings(BaseSettings):
    """Settings of `startctl worker` (env `START_WORKER_*`); peers come from PeerAddresses."""

    model_config = SettingsConfigDict(env_prefix="START_WORKER_", extra="forbid")

    concurrency: int = Field(8, ge=1, le=1024, description="Steps run at once (threads; steps wait on I/O).")
    queues: list[str] = Field(list(QUEUES), min_length=1, description="Queues this worker consumes, as JSON.")
    step_soft_time_limit_s: float = Field(600, gt=0, description="Soft limit of one step (prefork pools).")
    step_time_limit_s: float = Field(660, gt=0, description="Hard limit of one step (prefork pools).")
    rpc_timeout_s: float = Field(300, gt=0, description="Deadline of each call to a peer; bounds a step.")
    episode_budget_s: float = Field(
        3600,
        gt=0,
        le=7 * 24 * 3600,
        description="Wall-clock budget of an episode from its creation (a job's: its admission): each call's "
        "deadline is what is left of it, within rpc_timeout_s, and an episode past it ends FAILED saying so.",
    )
    visibility_timeout_s: int = Field(
        900, ge=1, description="A step whose worker died is redelivered after this long; keep above a step's time."
    )
    max_retries: int = Field(
        8,
        ge=0,
        le=20,
        description="Retries of a step on UNAVAILABLE-like errors. 8 retries wait 2 to 4 minutes in all: a "
        "peer that restarts (a vLLM engine loads in a minute or two on a small machine) fails no episode.",
    )
    retry_backoff_s: float = Field(
        2.0, gt=0, description="First retry delay; doubles each retry, capped at 60 s, jittered (0.5x to 1x)."
    )
    busy_wait_s: float = Field(
        900, ge=0, description="How long a step waits out a busy peer (RESOURCE_EXHAUSTED) before it fails."
    )
    busy_backoff_max_s: float = Field(5.0, gt=0, description="Longest pause between two tries at a busy peer.")
    finished_ttl_s: int = Field(7 * 24 * 3600, ge=0, description="Keep finished episodes this long; 0 forever.")
    redis_retry_s: float = Field(
        60, ge=0, description="How long a Redis command is retried across a Redis restart before the step gives up."
    )
    chain_s: float = Field(
        30,
        ge=0,
        description="Take an episode's next steps in the same task, saving after each, for up to this long "
        "(0: one step per task): no broker hop and no reload between steps. Within a step's soft time limit.",
    )
    log_level: str = Field("INFO", description="Celery's log level.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of the worker's Prometheus /metrics (0: off).")


    @model_validator(mode="after")
    def _chain_within_a_tasks_time(self) -> WorkerSettings:
        if self.chain_s and self.chain_s + self.rpc_timeout_s >= self.step_soft_time_limit_s:
            raise ValueError(
                f"chain_s ({self.chain_s}) plus one step's rpc_timeout_s ({self.rpc_timeout_s}) must stay under "
                f"step_soft_time_limit_s ({self.step_soft_time_limit_s}): lower chain_s or raise the limit"
            )
        return self

    def consumes(self, action: int) -> bool:
        """This worker takes steps of this kind (it listens on their queue)."""
        return queue_of(action) in self.queues


def queue_of(action: int) -> str:
    """The queue of a step that does `action`."""
    return _QUEUE_OF_ACTION.get(action, QUEUE_GENERATE)


def celery_config(redis_url: str, settings: WorkerSettings | None = None) -> dict:
    settings = settings or WorkerSettings()
    return {
        "broker_url": redis_url,
        # Kombu's Redis transport, with a worker that survives Redis dying mid-step (broker.py).
        "broker_transport": "services.orchestrator.broker:Transport",
        "result_backend": redis_url,
        # Steps report through the episode store, never through results.
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": QUEUE_GENERATE,
        "task_soft_time_limit": settings.step_soft_time_limit_s,
        "task_time_limit": settings.step_time_limit_s,
        "broker_connection_retry_on_startup": True,
        # A publish that meets a Redis restart waits for it (about a minute) instead of
        # failing the step that published; the reconciler covers anything still lost.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 30, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2,
        },
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            # Sweep for messages of dead workers often enough to honour the timeout.
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s)),
            "unacked_restore_throttle": 1,
            # The sweep holds a Redis lock while it restores; a worker killed while holding
            # it would block every sweep for kombu's default 300 s (a CI run saw a killed
            # worker's step wait that long). The lock's work takes milliseconds.
            "unacked_mutex_expire": 10,
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


def make_celery(redis_url: str, settings: WorkerSettings | None = None) -> Celery:
    app = Celery("start")
    app.conf.update(celery_config(redis_url, settings))
    return app


def enqueue_step(app: Celery, episode_id: str, step_no: int, action: int) -> None:
    """Hand step step_no of an episode to the queue of the work it does (blocking publish)."""
    app.send_task(STEP_TASK, args=[episode_id, step_no], queue=queue_of(action))


def queue_step(app: Celery, store: EpisodeStore, episode_id: str, step_no: int, action: int) -> None:
    """Publish a step, then record it as queued.

    In this order: a crash in between queues the step twice, which the store's
    compare-and-set makes harmless; the other order could lose it.
    """
    enqueue_step(app, episode_id, step_no, action)
    store.mark_queued(episode_id, step_no)
