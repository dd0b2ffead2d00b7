"""The episode store in Redis: every episode's state, saved after every step.

One hash per episode, `start:episode:<id>`, holds the `start.v1.Episode` bytes (`data`),
its step counter (`step`), the highest step already handed to Celery (`queued`) and when
either last moved (`touched`, unix seconds, read by the reconciler). A save is a
compare-and-set on the step counter (a Lua script, atomic in Redis): a step re-run after a
crash, or run twice by two workers, can only be saved once, so re-running a step is
harmless; a save retried after a lost reply finds its own data there and succeeds. Each
save publishes the saved episode on `start:episode:<id>:events`, so `WatchEpisode` streams
every step's change in order.

`start:inflight` is the set of episodes not finished yet: the reconciler (controller.py)
walks it to find a step nobody queued. An episode of a job (jobs.py) also counts, in the
same atomic save that finishes it, into its job's counters and its set of finished
episodes waiting to be written to the results; it never expires: it leaves Redis when the
results writer has written it. Other finished episodes expire after a TTL.

All Redis key names of the orchestrator are made here.
"""

from __future__ import annotations

import time

import redis
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from start.v1 import common_pb2 as pb

TERMINAL = (pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED, pb.EPISODE_STATUS_CANCELLED)

# KEYS: episode key, inflight set[, job key, job's written bitmap]; ARGV: data, now, id[, flat index].
# Creates the episode at step 0 unless it exists (0), or, for a job, unless its result is
# already written (-1): a finished episode is never run again.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if #KEYS >= 4 and redis.call('GETBIT', KEYS[4], ARGV[4]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'step', 0, 'queued', -1, 'touched', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if #KEYS >= 4 then redis.call('HINCRBY', KEYS[3], 'admitted', 1) end
return 1
"""

# KEYS: episode key, events channel, inflight set[, job key, job's finished set].
# ARGV: expected step, new step, data, ttl, now, terminal (0/1), id
#       [, counter of the final status, correct (0/1), tokens, tool calls].
_SAVE = """
local current = redis.call('HGET', KEYS[1], 'step')
if not current then return 0 end
if tonumber(current) ~= tonumber(ARGV[1]) then
  if tonumber(current) == tonumber(ARGV[2]) and redis.call('HGET', KEYS[1], 'data') == ARGV[3] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'step', ARGV[2], 'touched', ARGV[5])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
if ARGV[6] == '1' then
  redis.call('SREM', KEYS[3], ARGV[7])
  if #KEYS >= 5 and redis.call('SADD', KEYS[5], ARGV[7]) == 1 then
    redis.call('HINCRBY', KEYS[4], ARGV[8], 1)
    redis.call('HINCRBY', KEYS[4], 'correct', ARGV[9])
    redis.call('HINCRBY', KEYS[4], 'tokens', ARGV[10])
    redis.call('HINCRBY', KEYS[4], 'tool_calls', ARGV[11])
  end
end
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
"""

# KEYS[1] episode key; ARGV: step, now. Raises `queued` to step (never lowers it).
_MARK_QUEUED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local queued = tonumber(redis.call('HGET', KEYS[1], 'queued') or '-1')
if tonumber(ARGV[1]) > queued then redis.call('HSET', KEYS[1], 'queued', ARGV[1], 'touched', ARGV[2]) end
return 1
"""


_EPISODE_PREFIX, _EVENTS_SUFFIX = "start:episode:", ":events"
INFLIGHT = "start:inflight"
JOBS = "start:jobs"  # sorted set: job id by creation time
ACTIVE_JOBS = "start:jobs:active"  # set: jobs the controller still works on
CONTROLLER_LEADER = "start:controller:leader"


def episode_key(episode_id: str) -> str:
    return f"{_EPISODE_PREFIX}{episode_id}"


def events_channel(episode_id: str) -> str:
    return f"{episode_key(episode_id)}{_EVENTS_SUFFIX}"


def episode_of_events_channel(channel: str) -> str:
    """The episode id an events channel belongs to (the inverse of `events_channel`)."""
    return channel.removeprefix(_EPISODE_PREFIX).removesuffix(_EVENTS_SUFFIX)


def job_key(job_id: str) -> str:
    return f"start:job:{job_id}"


def job_finished_key(job_id: str) -> str:
    """Finished episodes of the job not yet written to its results."""
    return f"{job_key(job_id)}:finished"


def job_written_key(job_id: str) -> str:
    """Bitmap over the job's (problem, sample) indexes: set once the result is written."""
    return f"{job_key(job_id)}:written"


def job_batches_key(job_id: str) -> str:
    """Results batches claimed by a writer and not yet committed: part number -> episode ids."""
    return f"{job_key(job_id)}:batches"


def status_counter(status: int) -> str:
    """The job counter a finished episode of this status counts in."""
    return {pb.EPISODE_STATUS_DONE: "done", pb.EPISODE_STATUS_CANCELLED: "cancelled"}.get(status, "failed")


def blocking_redis(url: str, retry_s: float = 60.0) -> redis.Redis:
    """A client that rides out a Redis restart: each command is retried on a lost
    connection, with back-off, for about retry_s seconds, before the error reaches the caller."""
    attempts = max(1, int(retry_s / 2))
    return redis.Redis.from_url(
        url,
        socket_timeout=30,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), attempts),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


class EpisodeStore:
    """Blocking access, for Celery workers and the jobs controller."""

    def __init__(self, client: redis.Redis, finished_ttl_s: int = 0) -> None:
        self.client = client
        self.finished_ttl_s = finished_ttl_s
        self._create = client.register_script(_CREATE)
        self._save = client.register_script(_SAVE)
        self._mark_queued = client.register_script(_MARK_QUEUED)

    @classmethod
    def from_url(cls, url: str, finished_ttl_s: int = 0, retry_s: float = 60.0) -> EpisodeStore:
        return cls(blocking_redis(url, retry_s), finished_ttl_s)

    def create(self, episode: pb.Episode, flat_index: int | None = None) -> int:
        """Store a new episode at step 0: 1 when created, 0 when one with that id exists,
        -1 when it belongs to a job (`flat_index` given) whose result for it is written."""
        keys = [episode_key(episode.id), INFLIGHT]
        args: list = [episode.SerializeToString(), time.time(), episode.id]
        if flat_index is not None:
            keys += [job_key(episode.job_id), job_written_key(episode.job_id)]
            args.append(flat_index)
        return int(self._create(keys=keys, args=args))

    def load(self, episode_id: str) -> pb.Episode | None:
        data = self.client.hget(episode_key(episode_id), "data")
        return None if data is None else pb.Episode.FromString(data)

    def save(self, episode: pb.Episode, expected_step: int) -> bool:
        """Save episode (whose `steps` is the new counter) if the stored counter is expected_step."""
        terminal = episode.status in TERMINAL
        in_job = bool(episode.job_id)
        ttl = self.finished_ttl_s if terminal and not in_job else 0
        keys = [episode_key(episode.id), events_channel(episode.id), INFLIGHT]
        args: list = [
            expected_step, episode.steps, episode.SerializeToString(), ttl, time.time(), int(terminal), episode.id,
        ]
        if in_job:
            keys += [job_key(episode.job_id), job_finished_key(episode.job_id)]
            args += [
                status_counter(episode.status),
                int(episode.status == pb.EPISODE_STATUS_DONE and episode.score.correct),
                episode.generated_tokens,
                episode.tool_calls,
            ]
        return bool(self._save(keys=keys, args=args))

    def queued_step(self, episode_id: str) -> int:
        value = self.client.hget(episode_key(episode_id), "queued")
        return -1 if value is None else int(value)

    def mark_queued(self, episode_id: str, step: int) -> None:
        self._mark_queued(keys=[episode_key(episode_id)], args=[step, time.time()])


class AsyncEpisodeStore:
    """Non-blocking access, for the gRPC front door's event loop."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._create = client.register_script(_CREATE)
        self._mark_queued = client.register_script(_MARK_QUEUED)

    @classmethod
    def from_url(cls, url: str, max_connections: int = 100) -> AsyncEpisodeStore:
        # A blocking pool: when every connection is busy (hundreds of watchers reading the
        # store at once), a call waits for one instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=30, socket_timeout=30, health_check_interval=30
        )
        return cls(aioredis.Redis(connection_pool=pool))

    async def create(self, episode: pb.Episode) -> bool:
        keys, args = [episode_key(episode.id), INFLIGHT], [episode.SerializeToString(), time.time(), episode.id]
        return bool(await self._create(keys=keys, args=args))

    async def load(self, episode_id: str) -> pb.Episode | None:
        data = await self.client.hget(episode_key(episode_id), "data")
        return None if data is None else pb.Episode.FromString(data)

    async def queued_step(self, episode_id: str) -> int:
        value = await self.client.hget(episode_key(episode_id), "queued")
        return -1 if value is None else int(value)

    async def mark_queued(self, episode_id: str, step: int) -> None:
        await self._mark_queued(keys=[episode_key(episode_id)], args=[step, time.time()])

    async def close(self) -> None:
        await self.client.aclose()
