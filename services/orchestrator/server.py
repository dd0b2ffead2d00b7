"""The orchestrator's gRPC front door: accept episodes and jobs, report them, stream them.

`SubmitEpisode` stores the new episode in Redis and queues its first step on Celery; the
workers (`startctl worker`, `tasks.py`) do the rest. `GetEpisode` reads the store, or a
job's results once the episode has left Redis; `WatchEpisode` streams the episode, then
what each step changed (only the spans it touched: `episode_change`), woken by the store's
events channel (one shared subscription per process: events.py). `SubmitJob` reads and
checks a problem set and records the job (job_submit.py); the jobs controller
(controller.py), running in this process when it holds the leader lease, admits, writes
and closes jobs. `Solve` serves one problem with the tool loop in this process, streaming
what happens (solve.py).
Settings: `START_ORCHESTRATOR_*`; peers and Redis: `START_REDIS_URL`, `START_<PEER>_ADDR`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

import grpc
from celery import Celery
from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.common.channels import aio_channel
from services.common.episode import episode_change, new_episode
from services.common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, Unavailable, require
from services.common.logs import get_logger
from services.common.runtime import ServerHandle, serve
from services.common.settings import PeerAddresses, ServiceSettings
from services.orchestrator import results
from services.orchestrator.celery_app import enqueue_step, make_celery
from services.orchestrator.controller import Controller, ControllerSettings
from services.orchestrator.events import EpisodeEvents
from services.orchestrator.job_episodes import job_episodes, list_episodes
from services.orchestrator.job_submit import JobLimits, Provenance, submit_job
from services.orchestrator.jobs import JobStore, parse_episode_id
from services.orchestrator.solve import solve_stream
from services.orchestrator.store import TERMINAL, AsyncEpisodeStore, EpisodeStore
from services.orchestrator.validate import validate_episode_id, validate_job_id, validate_submit, with_defaults
from start.v1 import common_pb2 as pb
from start.v1 import (
    generation_pb2,
    generation_pb2_grpc,
    hints_pb2,
    hints_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)

log = get_logger("orchestrator.server")


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="START_ORCHESTRATOR_", extra="forbid")

    watch_timeout_s: float = Field(600, gt=0, description="WatchEpisode gives up after this long by default.")
    max_watch_timeout_s: float = Field(3600, gt=0, description="Longest WatchEpisode a client may ask for.")
    default_max_total_tokens: int = Field(4096, ge=1, description="Token budget of an episode that sets none.")
    max_total_tokens: int = Field(131072, ge=1, description="Largest token budget an episode may ask for.")
    default_max_tool_calls: int = Field(6, ge=1, description="Tool calls per episode when it sets none (paper: 6).")
    default_max_tool_output_chars: int = Field(2000, ge=1, description="Tool output kept per call by default.")
    max_question_chars: int = Field(200_000, ge=1, description="Longest question accepted.")
    solve_budget_s: float = Field(
        3600, gt=0, description="Wall-clock budget of a Solve's episode: each call's deadline is what is left of it, "
        "and an episode past it ends FAILED saying so (a worker's episode has START_WORKER_EPISODE_BUDGET_S).",
    )
    results_url: str = Field(
        "runs/jobs", description="Where job results go: a directory or fsspec URL (s3://, gs://); a folder per job."
    )
    max_job_episodes: int = Field(10_000_000, ge=1, description="Most episodes (problems x samples) in one job.")
    job_max_in_flight: int = Field(
        2048, ge=1, description="Episodes of one job held in Redis at once (running or waiting to be written)."
    )
    results_flush_episodes: int = Field(256, ge=1, description="Write a results part once this many episodes wait.")
    results_flush_s: float = Field(10.0, gt=0, description="...or once the oldest has waited this long.")
    results_part_max_episodes: int = Field(1024, ge=1, description="Rows per results part at most.")
    reconcile_after_s: float = Field(
        900, gt=0, description="An episode whose state has not moved this long gets its next step queued again."
    )
    controller_interval_s: float = Field(0.5, gt=0, description="Seconds between two rounds of the jobs controller.")
    controller: bool = Field(True, description="Run the jobs controller here (one front door leads at a time).")
    max_watch_interval_s: float = Field(60, gt=0, description="Longest interval between WatchJob messages.")
    rpc_timeout_s: float = Field(300, gt=0, description="Deadline of each call a Solve makes to a peer.")
    allowed_url_prefixes: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None,
        description="Comma-separated paths and URL prefixes that problem sets may be read from and results "
        "written to (besides results_url); unset: any (a laptop). The chart always sets it (url_policy.py).",
    )

    @field_validator("allowed_url_prefixes", mode="before")
    @classmethod
    def _split_prefixes(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(
        self,
        settings: Settings,
        store: AsyncEpisodeStore,
        events: EpisodeEvents,
        celery: Celery,
        peers: PeerAddresses,
        jobs: JobStore,
        blocking_store: EpisodeStore,
    ) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.celery = celery
        self.peers = peers
        self.jobs = jobs
        self.blocking_store = blocking_store  # for work done in threads (listing a job's episodes)
        self.hints = hints_pb2_grpc.HintServiceStub(aio_channel(peers.hints_addr))
        self.generation = generation_pb2_grpc.GenerationServiceStub(aio_channel(peers.generation_addr))

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
        validate_episode_id(request.episode_id)
        episode = await self.store.load(request.episode_id)
        if episode is None:
            episode = await asyncio.to_thread(self._written_episode, request.episode_id)
        if episode is None:
            raise NotFound(f"no episode {request.episode_id!r} (never submitted, or expired)")
        return episode

    def _written_episode(self, episode_id: str) -> pb.Episode | None:
        """A job's episode that has left Redis for its job's results."""
        parsed = parse_episode_id(episode_id)
        if parsed is None:
            return None
        job = self.jobs.get(parsed[0])
        job_url = job.results_url if job else results.join(self.settings.results_url, parsed[0])
        found = job_episodes(job_url, [episode_id], full=True)
        return found.get(episode_id)

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
            sent = None  # the snapshot the client has: each message is the change from it
            while True:
                yield episode_change(sent, episode)
                if episode.status in TERMINAL:
                    return
                sent = episode
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


    # -- jobs ------------------------------------------------------------------------------

    async def SubmitJob(self, request: orchestrator_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        if request.options.hint_library:
            await self._check_library(request.options.hint_library)
        provenance = await self._provenance(request.options.hint_library)
        job, created = await asyncio.to_thread(submit_job, request, self._limits(), self.jobs, provenance)
        return orchestrator_pb2.SubmitJobResponse(job=job, created=created)

    def _limits(self) -> JobLimits:
        s = self.settings
        return JobLimits(
            results_url=s.results_url,
            max_job_episodes=s.max_job_episodes,
            max_question_chars=s.max_question_chars,
            max_total_tokens=s.max_total_tokens,
            default_max_total_tokens=s.default_max_total_tokens,
            default_max_tool_calls=s.default_max_tool_calls,
            default_max_tool_output_chars=s.default_max_tool_output_chars,
            allowed_url_prefixes=s.allowed_url_prefixes,
        )

    async def _provenance(self, library: str) -> Provenance:
        """The served model and the hint library, for the manifest (blank where a peer is down)."""
        model = hint_library = ""
        with contextlib.suppress(grpc.aio.AioRpcError):
            model = (await self.generation.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=10)).model
        with contextlib.suppress(grpc.aio.AioRpcError):
            reply = await self.hints.ListHints(hints_pb2.ListHintsRequest(library=library), timeout=10)
            hint_library = f"{reply.library}@{reply.version}"
        return Provenance(model=model, hint_library=hint_library)

    async def GetJob(self, request: orchestrator_pb2.GetJobRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        return await self._job(request.job_id)

    async def _job(self, job_id: str) -> orchestrator_pb2.Job:
        validate_job_id(job_id)
        job = await asyncio.to_thread(self.jobs.get, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (never submitted; a job Redis lost resumes when submitted again)")
        return job

    async def WatchJob(self, request: orchestrator_pb2.WatchJobRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        s = self.settings
        timeout_s = request.timeout_s or s.watch_timeout_s
        require(0 < timeout_s <= s.max_watch_timeout_s, "timeout_s", f"must be in (0, {s.max_watch_timeout_s:.0f}]")
        interval_s = request.interval_s or 1.0
        require(0 < interval_s <= s.max_watch_interval_s, "interval_s", f"must be in (0, {s.max_watch_interval_s:.0f}]")
        deadline = time.monotonic() + timeout_s
        while True:
            job = await self._job(request.job_id)
            yield job
            if job.status in JOB_FINISHED:
                return
            if time.monotonic() + interval_s > deadline:
                raise DeadlineExceeded(
                    f"job {job.id} not finished after {timeout_s:.0f} s ({job.counts.written} of "
                    f"{job.counts.episodes} written); watch again or raise timeout_s"
                )
            await asyncio.sleep(interval_s)

    async def ListJobs(self, request: orchestrator_pb2.ListJobsRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        size = request.page_size or 50
        require(0 < size <= 1000, "page_size", "must be in [1, 1000] (0: 50)")
        offset = _page_offset(request.page_token)
        ids = await asyncio.to_thread(self.jobs.list_ids, offset, size)
        jobs = [job for job in await asyncio.gather(*(asyncio.to_thread(self.jobs.get, i) for i in ids)) if job]
        token = str(offset + size) if len(ids) == size else ""
        return orchestrator_pb2.ListJobsResponse(jobs=jobs, next_page_token=token)

    async def CancelJob(self, request: orchestrator_pb2.CancelJobRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        await self._job(request.job_id)
        await asyncio.to_thread(self.jobs.cancel, request.job_id)
        return await self._job(request.job_id)

    async def ListEpisodes(self, request: orchestrator_pb2.ListEpisodesRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        size = request.page_size or 100
        require(0 < size <= 1000, "page_size", "must be in [1, 1000] (0: 100)")
        job = await self._job(request.job_id)
        start = _page_offset(request.page_token)
        return await asyncio.to_thread(list_episodes, job, self.blocking_store, start, size, request.full)

    async def EvaluateJob(self, request: orchestrator_pb2.EvaluateJobRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        job = await self._job(request.job_id)
        # Reading every part and 2000 bootstrap draws per figure: off the event loop.
        return await asyncio.to_thread(_evaluate, job, list(request.ks), request.allow_partial)


    # -- serving -------------------------------------------------------------------------

    async def Solve(self, request: orchestrator_pb2.SolveRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        stream = solve_stream(
            request, self.settings, self.peers, self.settings.rpc_timeout_s, check_library=self._check_library
        )
        async for event in stream:
            yield event


JOB_FINISHED = (orchestrator_pb2.JOB_STATUS_DONE, orchestrator_pb2.JOB_STATUS_CANCELLED)


def _evaluate(job: orchestrator_pb2.Job, ks: list[int], allow_partial: bool) -> orchestrator_pb2.Evaluation:
    # Imported on first use: pandas and matplotlib would add a second or more to every front door's start.
    from recipe.evaluate import evaluate_job, resolve_ks, to_proto

    ks = resolve_ks(ks, job.samples)
    if job.status not in JOB_FINISHED and not allow_partial:
        raise FailedPrecondition(
            f"job {job.id} is not finished ({job.counts.written} of {job.counts.episodes} episodes written): "
            "wait for it (WatchJob), or set allow_partial to score the problems written so far"
        )
    return to_proto(evaluate_job(job.results_url, ks))


def _page_offset(token: str) -> int:
    require(token == "" or token.isdigit(), "page_token", "not a token this service gave; start with an empty one")
    return int(token or 0)


async def serve_forever(settings: Settings) -> None:
    peers = PeerAddresses()
    store = AsyncEpisodeStore.from_url(peers.redis_url)
    events = EpisodeEvents(store.client)
    celery = make_celery(peers.redis_url)

    blocking = EpisodeStore.from_url(peers.redis_url)
    jobs = JobStore(blocking.client)
    controller = Controller(blocking, jobs, celery, controller_settings(settings))
    background: list[asyncio.Task] = []

    def register(server: grpc.aio.Server) -> list[str]:
        servicer = OrchestratorServicer(settings, store, events, celery, peers, jobs, blocking)
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)
        return [orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name]

    async def check_redis(handle: ServerHandle) -> None:
        await store.client.ping()  # fail at start, with the URL in the error, if Redis is not there
        await events.start()
        if settings.controller:
            background.append(asyncio.create_task(run_controller(controller, settings.controller_interval_s)))

    async def close(handle: ServerHandle) -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await events.close()
        await store.close()

    await serve("orchestrator", settings, register, on_start=check_redis, on_stop=close)


def controller_settings(settings: Settings) -> ControllerSettings:
    return ControllerSettings(
        max_in_flight=settings.job_max_in_flight,
        flush_min_episodes=settings.results_flush_episodes,
        flush_max_wait_s=settings.results_flush_s,
        flush_max_episodes=settings.results_part_max_episodes,
        reconcile_after_s=settings.reconcile_after_s,
    )


async def run_controller(controller: Controller, interval_s: float) -> None:
    """The controller's rounds, in a thread each (its Redis and file I/O block), until cancelled."""
    while True:
        try:
            await asyncio.to_thread(controller.tick)
        except Exception:  # noqa: BLE001 - a failed round is logged; the next one tries again
            log.exception("controller round failed")
        await asyncio.sleep(interval_s)
