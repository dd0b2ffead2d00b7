"""Solve: one problem run with the tool loop in this process, streamed as it happens.

How a team serves its trained model to its own clients: no Celery, no Redis, one
episode. It runs the episode with `steps.take_step`, the one owner of the episode's rules
(stops, hints, tool calls, the budget), so Solve and the workers cannot drift apart; what
Solve adds is only how the client sees it:

    MODEL_DELTA  what the model writes, as the engine streams it (`StreamingPeers`), and
                 the stop strings the policy writes back after a stop (the engine cuts
                 them from its output; the model did write them)
    HINT         a hint the policy appended
    TOOL_CODE    the python block about to run in the sandbox (already streamed as deltas)
    TOOL_OUTPUT  the fenced output block appended after it
    FINAL        the finished episode, scored

so the deltas, hints and tool outputs, concatenated, are the episode's text after the
prompt. After each step the events come from the text the step appended, less what the
client already has; only the generation's text streams during a step.

The steps block on gRPC, so the episode runs in a thread of its own (not the event loop's
default executor: a Solve lasts minutes and would starve the servicer's other
`to_thread` calls); `solve_stream` is the async side the servicer forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from services.common.episode import new_episode, text_of
from services.common.errors import ServiceError, Unavailable
from services.common.logs import get_logger
from services.common.settings import PeerAddresses
from services.common.text_contract import last_closed_code_block
from services.orchestrator.peers import Peers, TransientError, describe, generation_request, is_busy, is_transient
from services.orchestrator.steps import take_step
from services.orchestrator.validate import validate_problem_and_options, with_defaults
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2
from start.v1 import orchestrator_pb2 as opb

log = get_logger("orchestrator.solve")

# A step that fails on a peer that is down or slow is tried again this many times, after
# 1, 2, 4 s (the client is waiting: shorter than the workers' back-off).
STEP_RETRIES = 3
RETRY_BACKOFF_S = 1.0
# A peer that says it is full (RESOURCE_EXHAUSTED: the sandbox pool) is waited out this
# long, in pauses of at most BUSY_PAUSE_MAX_S, without spending the retries.
BUSY_WAIT_S = 300.0
BUSY_PAUSE_MAX_S = 5.0

_FINISHED = (pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED)
_EVENT_OF_SPAN = {
    pb.SPAN_KIND_MODEL: opb.SOLVE_EVENT_KIND_MODEL_DELTA,
    pb.SPAN_KIND_TOOL_CODE: opb.SOLVE_EVENT_KIND_MODEL_DELTA,
    pb.SPAN_KIND_HINT: opb.SOLVE_EVENT_KIND_HINT,
    pb.SPAN_KIND_TOOL_OUTPUT: opb.SOLVE_EVENT_KIND_TOOL_OUTPUT,
}

Emit = Callable[[opb.SolveEvent], None]


class SolveCancelled(Exception):
    """The client went away: raised inside the episode's thread to stop it where it is."""


class SolveLimits(Protocol):
    """The orchestrator settings a Solve is checked against and given defaults from
    (the servicer passes its `Settings`, which has them all)."""

    max_question_chars: int
    max_total_tokens: int
    default_max_total_tokens: int
    default_max_tool_calls: int
    default_max_tool_output_chars: int
    solve_budget_s: float


# The setting a Solve's wall-clock budget comes from, named when it runs out.
SOLVE_BUDGET_SETTING = "START_ORCHESTRATOR_SOLVE_BUDGET_S"


def _ignore(text: str) -> None:
    """Where generated text goes when nobody listens."""


@dataclass
class StreamingPeers(Peers):
    """Peers whose `generate` streams: each piece of text goes to `on_text` as the engine
    writes it, and the reply is the `GenerateResponse` that `Generate` would have given.

    A step retried after a failure generates again from the same context: what the client
    already has of this step (`streamed`) is not sent twice, and a retry that writes
    something else cannot be shown consistently, so it fails the Solve.
    """

    on_text: Callable[[str], None] = _ignore
    streamed: str = field(default="", init=False)

    def start_step(self) -> None:
        self.streamed = ""

    def until(self, deadline_unix: float) -> StreamingPeers:
        """These very peers with the budget's deadline set, not a copy as a worker's are: a
        Solve's peers serve its one episode in one thread, and hold what its step has
        streamed (`streamed`), which a copy would keep to itself (the client would get the
        step's text twice)."""
        self.deadline_unix = deadline_unix
        return self

    def generate(
        self, episode_id: str, context: list[generation_pb2.ContextPiece], sampling: pb.SamplingParams
    ) -> generation_pb2.GenerateResponse:
        finals: dict[int, generation_pb2.Completion] = {}
        usage = pb.Usage()
        written = 0  # characters of sample 0 this call has written so far
        with self.generation_stub(episode_id) as stub:
            call = stub.GenerateStream(generation_request(context, sampling), timeout=self.call_timeout())
            try:
                for chunk in call:
                    # An episode generates one sample; only sample 0 is the episode's text.
                    if chunk.index == 0 and chunk.delta_text:
                        written = self._forward(written, chunk.delta_text)
                    if chunk.HasField("final"):
                        finals[chunk.index] = chunk.final
                    if chunk.HasField("usage"):
                        usage = chunk.usage
            except BaseException:
                call.cancel()  # the engine aborts the sequence instead of finishing it for nobody
                raise
        if 0 not in finals:
            raise TransientError("the generation stream ended without its final chunk")
        # The final text is the truth: send any of it the deltas did not carry, and fail a
        # retry that ended short of what the client already has.
        text = finals[0].text
        if text[:written] != self.streamed[:written]:
            raise _diverged()
        self._forward(written, text[written:])
        if self.streamed != text:
            raise _diverged()
        return generation_pb2.GenerateResponse(completions=[finals[i] for i in sorted(finals)], usage=usage)

    def _forward(self, start: int, piece: str) -> int:
        """`piece` is this call's text from character `start`; send what the client lacks."""
        end = start + len(piece)
        known = self.streamed[start:end]
        if not piece.startswith(known):
            raise _diverged()
        fresh = piece[len(known) :]
        if fresh:
            self.streamed += fresh
            self.on_text(fresh)
        return end


def _diverged() -> Unavailable:
    return Unavailable(
        "generation failed during a step and its retry wrote other text than the client was sent; solve again"
    )


def solve(
    problem: pb.Problem,
    options: pb.EpisodeOptions,
    peers: StreamingPeers,
    emit: Emit,
    cancelled: threading.Event,
    budget_s: float = 0.0,
) -> pb.Episode:
    """Run the episode to its end, emitting its events; blocking. `options` are the
    effective ones (defaults filled in) and already validated. `peers.on_text` must send
    MODEL_DELTAs through the same `emit`, so that the events keep the text's order.
    `budget_s`: the episode's wall-clock budget (0: none), as a worker's episode has: each
    call's deadline is what is left of it, and the episode ends FAILED when it is spent."""
    episode = new_episode(problem, options)
    while episode.status not in _FINISHED:
        if cancelled.is_set():
            raise SolveCancelled
        peers.start_step()
        if episode.status == pb.EPISODE_STATUS_RUNNING and episode.next_action == pb.ACTION_KIND_RUN_TOOL:
            code = last_closed_code_block(text_of(episode))
            if code is not None:  # without one the step fails and says so
                emit(opb.SolveEvent(kind=opb.SOLVE_EVENT_KIND_TOOL_CODE, text=code))
        known = len(text_of(episode))
        _take_step(episode, peers, cancelled, budget_s)
        for event in appended_events(episode, known, peers.streamed):
            emit(event)
    emit(opb.SolveEvent(kind=opb.SOLVE_EVENT_KIND_FINAL, episode=episode))
    return episode


def appended_events(episode: pb.Episode, known: int, streamed: str) -> Iterator[opb.SolveEvent]:
    """Events for the episode's text past its first `known` characters, less `streamed`
    (what the generation already sent: a step appends what the model wrote first).

    One exception: a generation cut by the episode's budget (its deadline) streamed text
    that its retry never appends, since the retry ends the episode at its budget. That text
    is not the episode's: nothing more is sent, and FINAL holds the episode and why it ended."""
    appended = text_of(episode)[known:]
    if not appended.startswith(streamed):
        if episode.status in _FINISHED and not appended:
            return
        raise ServiceError(f"step {episode.steps - 1} appended other text than the engine streamed")
    offset = 0
    skip = known + len(streamed)
    for span in episode.spans:
        start, offset = offset, offset + len(span.text)
        if offset <= skip:
            continue
        text = span.text[max(skip - start, 0) :]
        kind = _EVENT_OF_SPAN.get(span.kind)
        if kind is not None:  # the prompt is the client's own question
            yield opb.SolveEvent(kind=kind, text=text, hint_id=span.hint_id, hint_category=span.hint_category)


def _take_step(episode: pb.Episode, peers: Peers, cancelled: threading.Event, budget_s: float = 0.0) -> None:
    """`take_step`, tried again on a transient failure, waiting out a busy peer (as the
    workers do); a failure that stays raises the ServiceError the client sees."""
    before = pb.Episode()
    before.CopyFrom(episode)
    faults, busy_since = 0, 0.0
    while True:
        try:
            take_step(episode, peers, budget_s, SOLVE_BUDGET_SETTING)
            return
        except SolveCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - retried, or raised as the status the client sees
            # A failed step may have half-changed the episode (the workers reload it from
            # the store): the retry starts where the step did.
            episode.CopyFrom(before)
            step = episode.steps
            if is_busy(exc):
                busy_since = busy_since or time.monotonic()
                waited = time.monotonic() - busy_since
                if waited >= BUSY_WAIT_S:
                    raise Unavailable(f"step {step}: a peer stayed busy for {waited:.0f} s: {describe(exc)}") from exc
                pause = random.uniform(0.5, 1.0) * min(BUSY_PAUSE_MAX_S, 0.25 * 2 ** (waited // 2))
            elif is_transient(exc):
                if faults >= STEP_RETRIES:
                    raise Unavailable(f"step {step} after {faults} retries: {describe(exc)}") from exc
                pause = random.uniform(0.5, 1.0) * RETRY_BACKOFF_S * 2**faults  # jittered, as the workers'
                faults += 1
                log.info("retrying step", episode_id=episode.id, step=step, retry=faults, error=describe(exc))
            elif isinstance(exc, ServiceError):
                raise
            else:
                log.warning("solve failed", episode_id=episode.id, step=step, error=describe(exc))
                raise ServiceError(f"step {step} failed: {describe(exc)}") from exc
            if cancelled.wait(pause):
                raise SolveCancelled from exc


@dataclass(frozen=True)
class _End:
    """The episode's thread is done; with the error that ended it, if one did."""

    error: BaseException | None = None


async def solve_stream(
    request: opb.SolveRequest,
    limits: SolveLimits,
    addresses: PeerAddresses,
    rpc_timeout_s: float,
    check_library: Callable[[str], Awaitable[None]] | None = None,
) -> AsyncIterator[opb.SolveEvent]:
    """The Solve RPC: check the request, run the episode in a thread, yield its events.

    `check_library` checks `options.hint_library` with the hints service (the servicer's
    own check, shared with SubmitEpisode). Closing this generator (the client cancelled)
    stops the episode at its next piece of text or step.
    """
    validate_problem_and_options(request.problem, request.options, limits.max_question_chars, limits.max_total_tokens)
    if request.options.hint_library and check_library is not None:
        await check_library(request.options.hint_library)
    options = with_defaults(
        request.options,
        limits.default_max_total_tokens,
        limits.default_max_tool_calls,
        limits.default_max_tool_output_chars,
    )
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[opb.SolveEvent | _End] = asyncio.Queue()
    cancelled = threading.Event()

    def send(item: opb.SolveEvent | _End) -> None:
        if cancelled.is_set():
            raise SolveCancelled
        loop.call_soon_threadsafe(events.put_nowait, item)

    def send_text(text: str) -> None:
        send(opb.SolveEvent(kind=opb.SOLVE_EVENT_KIND_MODEL_DELTA, text=text))

    def run() -> None:
        try:
            peers = StreamingPeers(addresses, rpc_timeout_s, on_text=send_text)
            solve(request.problem, options, peers, send, cancelled, limits.solve_budget_s)
            end = _End()
        except SolveCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the stream, which raises it
            end = _End(exc)
        # The stream may be gone by now (cancelled, its loop closed): then nobody waits.
        with contextlib.suppress(SolveCancelled, RuntimeError):
            send(end)

    threading.Thread(target=run, name="solve", daemon=True).start()
    try:
        while True:
            item = await events.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        cancelled.set()
