"""The episode store in Redis: every episode's state, saved after every step.

One hash per episode, `start:episode:<id>`, holds the `start.v1.Episode` bytes (`data`),
its step counter (`step`) and the highest step already handed to Celery (`queued`).
A save is a compare-and-set on the step counter (a Lua script, atomic in Redis): a step
re-run after a crash, or run twice by two workers, can only be saved once, so re-running
a step is harmless. Each save publishes the saved episode on
`start:episode:<id>:events`, so `WatchEpisode` streams every step's snapshot in order. Finished episodes expire
after a TTL; running ones never do.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from start.v1 import common_pb2 as pb

TERMINAL = (pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED)

# KEYS[1] episode key; ARGV: data. Creates the episode at step 0 unless it exists.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'step', 0, 'queued', -1)
return 1
"""

# KEYS[1] episode key, KEYS[2] events channel; ARGV: expected step, new step, data, ttl.
_SAVE = """
local current = redis.call('HGET', KEYS[1], 'step')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'step', ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
"""

# KEYS[1] episode key; ARGV: step. Raises `queued` to step (never lowers it).
_MARK_QUEUED = """
local queued = tonumber(redis.call('HGET', KEYS[1], 'queued') or '-1')
if tonumber(ARGV[1]) > queued then redis.call('HSET', KEYS[1], 'queued', ARGV[1]) end
return 1
"""


_EPISODE_PREFIX, _EVENTS_SUFFIX = "start:episode:", ":events"


def episode_key(episode_id: str) -> str:
    return f"{_EPISODE_PREFIX}{episode_id}"


def events_channel(episode_id: str) -> str:
    return f"{episode_key(episode_id)}{_EVENTS_SUFFIX}"


def episode_of_events_channel(channel: str) -> str:
    """The episode id an events channel belongs to (the inverse of `events_channel`)."""
    return channel.removeprefix(_EPISODE_PREFIX).removesuffix(_EVENTS_SUFFIX)


class EpisodeStore:
    """Blocking access, for Celery workers."""

    def __init__(self, client: redis.Redis, finished_ttl_s: int = 0) -> None:
        self.client = client
        self.finished_ttl_s = finished_ttl_s
        self._create = client.register_script(_CREATE)
        self._save = client.register_script(_SAVE)
        self._mark_queued = client.register_script(_MARK_QUEUED)

    @classmethod
    def from_url(cls, url: str, finished_ttl_s: int = 0) -> EpisodeStore:
        return cls(redis.Redis.from_url(url, socket_timeout=30, health_check_interval=30), finished_ttl_s)

    def create(self, episode: pb.Episode) -> bool:
        """Store a new episode at step 0; False when one with that id exists."""
        return bool(self._create(keys=[episode_key(episode.id)], args=[episode.SerializeToString()]))

    def load(self, episode_id: str) -> pb.Episode | None:
        data = self.client.hget(episode_key(episode_id), "data")
        return None if data is None else pb.Episode.FromString(data)

    def save(self, episode: pb.Episode, expected_step: int) -> bool:
        """Save episode (whose `steps` is the new counter) if the stored counter is expected_step."""
        ttl = self.finished_ttl_s if episode.status in TERMINAL else 0
        keys = [episode_key(episode.id), events_channel(episode.id)]
        args = [expected_step, episode.steps, episode.SerializeToString(), ttl]
        return bool(self._save(keys=keys, args=args))

    def queued_step(self, episode_id: str) -> int:
        value = self.client.hget(episode_key(episode_id), "queued")
        return -1 if value is None else int(value)

    def mark_queued(self, episode_id: str, step: int) -> None:
        self._mark_queued(keys=[episode_key(episode_id)], args=[step])


class AsyncEpisodeStore:
    """Non-blocking access, for the gRPC front door's event loop."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._create = client.register_script(_CREATE)
        self._mark_queued = client.register_script(_MARK_QUEUED)

    @classmethod
    def from_url(cls, url: str) -> AsyncEpisodeStore:
        return cls(aioredis.Redis.from_url(url, socket_timeout=30, health_check_interval=30))

    async def create(self, episode: pb.Episode) -> bool:
        return bool(await self._create(keys=[episode_key(episode.id)], args=[episode.SerializeToString()]))

    async def load(self, episode_id: str) -> pb.Episode | None:
        data = await self.client.hget(episode_key(episode_id), "data")
        return None if data is None else pb.Episode.FromString(data)

    async def queued_step(self, episode_id: str) -> int:
        value = await self.client.hget(episode_key(episode_id), "queued")
        return -1 if value is None else int(value)

    async def mark_queued(self, episode_id: str, step: int) -> None:
        await self._mark_queued(keys=[episode_key(episode_id)], args=[step])

    async def close(self) -> None:
        await self.client.aclose()
