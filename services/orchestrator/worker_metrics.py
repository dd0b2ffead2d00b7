"""Prometheus metrics of the Celery workers, served on `START_WORKER_METRICS_PORT`.

What an operator watches besides the queue length: how many steps of each kind the
workers take and how each ended (saved, a duplicate run discarded, waiting out a busy
peer, retried after a fault, failed), how long they take and how much of that is the
platform's own work (load, hint decision, save, queue), how episodes end, and which
generation replica takes each step (services/orchestrator/routing.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STEPS = Counter(
    "start_worker_steps_total",
    "Episode steps taken, by the action they ran and how they ended.",
    ["action", "outcome"],
)
STEP_SECONDS = Histogram(
    "start_worker_step_seconds",
    "Wall time of one episode step, by the action it ran.",
    ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
EPISODES_FINISHED = Counter(
    "start_worker_episodes_finished_total",
    "Episodes that ended, by status (done, failed, cancelled).",
    ["status"],
)
GENERATION_CALLS = Counter(
    "start_worker_generation_calls_total",
    "Generation calls of episode steps, by the replica that took them and how it was chosen: own (the "
    "replica the episode hashes to), spilled (its own was saturated), rehashed (its own answered "
    "UNAVAILABLE lately), round_robin (no affinity). Spilled and rehashed calls lose the episode's cache.",
    ["replica", "route"],
)
PLATFORM_SECONDS = Histogram(
    "start_worker_platform_seconds",
    "Time a step spends on the platform's own work, by part: load (read the episode from Redis), hints (the "
    "policy's decision over gRPC), save (the compare-and-set in Redis), queue (publish the next step).",
    ["part"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
