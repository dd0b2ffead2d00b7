"""The orchestrator's gRPC front door: accept episodes, report them, stream their steps.

`SubmitEpisode` stores the new episode in Redis and queues its first step on Celery; the
workers (`startctl worker`, `tasks.py`) do the rest. `GetEpisode` reads the store;
`WatchEpisode` streams a snapshot after every step, woken by the store's events channel
(one shared subscription per process: events.py).
Settings: `START_ORCHESTRATOR_*`; peers and Redis: `START_REDIS_URL`, `START_HINTS_ADDR`.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from celery import Celery
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.channels import aio_channel
from services.common.episode import new_episode
from services.common.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable, require
from services.common.runtime import ServerHandle, serve
from services.common.settings import PeerAddresses, ServiceSettings
from services.orchestrator.celery_app import enqueue_step, make_celery
from services.orchestrator.events import EpisodeEvents
from services.orchestrator.store import TERMINAL, AsyncEpisodeStore
from services.orchestrator.validate import validate_episode_id, validate_submit, with_defaults
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2, hints_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="START_ORCHESTRATOR_", extra="forbid")

    watch_timeout_s: float = Field(600, gt=0, description="WatchEpisode gives up after this long by default.")
    max_watch_timeout_s: float = Field(3600, gt=0, description="Longest WatchEpisode a client may ask for.")
    default_max_total_tokens: int = Field(4096, ge=1, description="Token budget of an episode that sets none.")
    max_total_tokens: int = Field(131072, ge=1, description="Largest token budget an episode may ask for.")
    default_max_tool_calls: int = Field(6, ge=1, description="Tool calls per episode when it sets none (paper: 6).")
    default_max_tool_output_chars: int = Field(2000, ge=1, description="Tool output kept per call by default.")
    max_question_chars: int = Field(200_000, ge=1, description="Longest question accepted.")


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(
        self, settings: Settings, store: AsyncEpisodeStore, events: EpisodeEvents, celery: Celery, hints_addr: str
    ) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.celery = celery
        self.hints = hints_pb2_grpc.HintServiceStub(aio_channel(hints_addr))

    async def SubmitEpisode(self, request: orchestrator_pb2.SubmitEpisodeRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        s = self.settings
        validate_submit(request, s.max_question_chars, s.max_total_tokens)
        if request.options.hint_library:
            await self._check_library(request.options.hint_library)
        options = with_defaults(
            request.options, s.default_max_total_tokens, s.default_max_tool_calls, s.default_max_tool_output_chars
        )
        episode = new_episode(request.problem, options, request.episode_id)
        # The same idempotency key again is one episode: its first step is queued again
        # only if the earlier submission died before it could queue it.
        if not await self.store.create(episode) and await self.store.queued_step(episode.id) >= 0:
            return orchestrator_pb2.SubmitEpisodeResponse(episode_id=episode.id)
        await asyncio.to_thread(enqueue_step, self.celery, episode.id, 0, pb.ACTION_KIND_UNSPECIFIED)
        await self.store.mark_queued(episode.id, 0)
        return orchestrator_pb2.SubmitEpisodeResponse(episode_id=episode.id)

    async def _check_library(self, name: str) -> None:
        try:
            await self.hints.ListHints(hints_pb2.ListHintsRequest(library=name), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument("options.hint_library", exc.details() or f"unknown library {name!r}") from exc
            raise Unavailable(f"cannot check options.hint_library with the hints service: {exc.details()}") from exc

    async def GetEpisode(self, request: orchestrator_pb2.GetEpisodeRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        return await self._load(request.episode_id)

    async def WatchEpisode(self, request: orchestrator_pb2.WatchEpisodeRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        timeout_s = request.timeout_s or self.settings.watch_timeout_s
        require(
            0 < timeout_s <= self.settings.max_watch_timeout_s,
            "timeout_s",
            f"must be in (0, {self.settings.max_watch_timeout_s:.0f}] seconds (0: the default)",
        )
        validate_episode_id(request.episode_id)
        deadline = time.monotonic() + timeout_s
        # Subscribed before the first read, so no step can slip between the two.
        async with self.events.watch(request.episode_id) as events:
            episode = await self._load(request.episode_id)
            while True:
                yield episode
                if episode.status in TERMINAL:
                    return
                episode = await self._next_snapshot(events, episode, deadline, timeout_s)

    async def _next_snapshot(
        self, events: asyncio.Queue[bytes], last: pb.Episode, deadline: float, timeout_s: float
    ) -> pb.Episode:
        """The episode as saved by the step after last's, waiting for it until the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(
                    f"episode {last.id} not finished after {timeout_s:.0f} s (step {last.steps}); "
                    "watch again or raise timeout_s"
                )
            try:
                snapshot = pb.Episode.FromString(await asyncio.wait_for(events.get(), timeout=min(left, 1.0)))
            except TimeoutError:
                # Quiet for a second: read the store, in case a message was missed.
                snapshot = await self._load(last.id)
            if snapshot.steps > last.steps:
                return snapshot

    async def _load(self, episode_id: str) -> pb.Episode:
        validate_episode_id(episode_id)
        episode = await self.store.load(episode_id)
        if episode is None:
            raise NotFound(f"no episode {episode_id!r} (never submitted, or expired)")
        return episode


async def serve_forever(settings: Settings) -> None:
    peers = PeerAddresses()
    store = AsyncEpisodeStore.from_url(peers.redis_url)
    events = EpisodeEvents(store.client)
    celery = make_celery(peers.redis_url)

    def register(server: grpc.aio.Server) -> list[str]:
        servicer = OrchestratorServicer(settings, store, events, celery, peers.hints_addr)
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)
        return [orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name]

    async def check_redis(handle: ServerHandle) -> None:
        await store.client.ping()  # fail at start, with the URL in the error, if Redis is not there
        await events.start()

    async def close(handle: ServerHandle) -> None:
        await events.close()
        await store.close()

    await serve("orchestrator", settings, register, on_start=check_redis, on_stop=close)
