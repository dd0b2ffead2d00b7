"""Step events for `WatchEpisode`: one Redis subscription per process, shared by every watcher.

Every save of an episode publishes its bytes on `start:episode:<id>:events` (store.py).
A connection per watcher would cap watchers at the Redis pool's size (100 by default, and
a hundred sockets for a hundred clients); here one pub/sub connection subscribes to an
episode's channel while anyone watches it and fans its messages out to each watcher's
queue. A background task reads the connection; it reconnects (and resubscribes) after a
Redis failure, and watchers fall back to reading the store when they hear nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.common.logs import get_logger
from services.orchestrator.store import episode_of_events_channel, events_channel

log = get_logger("orchestrator.events")

# Subscribed for the hub's whole life, so the connection is always in pub/sub mode and
# subscribing to an episode is a plain command, never a health-check round trip that would
# race the reader.
_ANCHOR = "start:events:anchor"


class EpisodeEvents:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: aioredis.client.PubSub | None = None
        self._watchers: dict[str, set[asyncio.Queue[bytes]]] = {}
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        await self._connect()
        self._reader = asyncio.create_task(self._read_forever())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()

    @contextlib.asynccontextmanager
    async def watch(self, episode_id: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        """A queue that gets every snapshot saved for the episode while the block runs."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        channel = events_channel(episode_id)
        first = episode_id not in self._watchers
        self._watchers.setdefault(episode_id, set()).add(queue)
        try:
            if first:
                await self._command("subscribe", channel)
            yield queue
        finally:
            watchers = self._watchers.get(episode_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[episode_id]
                    await self._command("unsubscribe", channel)

    async def _connect(self) -> None:
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(_ANCHOR, *(events_channel(i) for i in self._watchers))

    async def _command(self, name: str, channel: str) -> None:
        # A failed (un)subscribe is repaired by the reconnect, which resubscribes to every
        # watched episode; meanwhile the watcher reads the store.
        with contextlib.suppress(RedisError, OSError):
            await getattr(self._pubsub, name)(channel)

    async def _read_forever(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                log.warning("event subscription lost; reconnecting", error=str(exc))
                await asyncio.sleep(1.0)
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.aclose()
                    await self._connect()
                continue
            if message is None or message.get("type") != "message":
                continue
            episode_id = episode_of_events_channel(message["channel"].decode())
            for queue in self._watchers.get(episode_id, ()):
                queue.put_nowait(message["data"])
