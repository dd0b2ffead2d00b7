"""The orchestrator's calls to the other services, in one place, with deadlines.

Blocking gRPC stubs (Celery steps run in worker threads, Solve in a thread per call),
one channel per peer per process: every `Peers` of a process shares it, so a `Peers` per
Solve call costs no connection. `TRANSIENT` names the status codes worth a retry of the
step: the peer is down, restarting, overloaded or slow.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from services.common.channels import channel
from services.common.episode import view_of
from services.common.settings import PeerAddresses
from services.orchestrator.routing import RoutingConfig, shared_router
from services.orchestrator.worker_metrics import PLATFORM_SECONDS
from start.v1 import common_pb2 as pb
from start.v1 import (
    generation_pb2,
    generation_pb2_grpc,
    hints_pb2,
    hints_pb2_grpc,
    sandbox_pb2,
    sandbox_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
)

TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
)


# Channels are thread-safe and multiplex calls: one per address serves every Peers.
_shared_channel = functools.cache(channel)


def generation_request(
    context: list[generation_pb2.ContextPiece], sampling: pb.SamplingParams
) -> generation_pb2.GenerateRequest:
    """An episode's Generate: its context as pieces, max_tokens cut to the context's room."""
    return generation_pb2.GenerateRequest(context=context, sampling=sampling, fit_to_context=True)


class TransientError(Exception):
    """A failure that a later retry of the same step may not see (a sandbox hiccup)."""


def is_busy(exc: BaseException) -> bool:
    """The peer is up but full (a bounded queue said no): wait and try again, it is not a fault."""
    return isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    return isinstance(exc, grpc.RpcError) and exc.code() in TRANSIENT


def describe(exc: BaseException) -> str:
    """A step's failure in one line: the status and details of a peer's error, else the exception."""
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Peers:
    addresses: PeerAddresses
    timeout_s: float

    def __post_init__(self) -> None:
        # Calls that need no particular replica (chat template, model facts) go to any one.
        self.generation = generation_pb2_grpc.GenerationServiceStub(_shared_channel(self.addresses.generation_addr))
        # An episode's generation calls go to the replica holding its prefix (routing.py).
        self.router = shared_router(RoutingConfig.from_addresses(self.addresses), _shared_channel)
        self.hints = hints_pb2_grpc.HintServiceStub(_shared_channel(self.addresses.hints_addr))
        self.sandbox = sandbox_pb2_grpc.SandboxServiceStub(_shared_channel(self.addresses.sandbox_addr))
        self.scoring = scoring_pb2_grpc.ScoringServiceStub(_shared_channel(self.addresses.scoring_addr))

    def render_chat(self, question: str) -> str:
        request = generation_pb2.RenderChatRequest(
            messages=[generation_pb2.ChatMessage(role="user", content=question)], add_generation_prompt=True
        )
        return self.generation.RenderChat(request, timeout=self.timeout_s).text

    def generate(
        self, episode_id: str, context: list[generation_pb2.ContextPiece], sampling: pb.SamplingParams
    ) -> generation_pb2.GenerateResponse:
        """One step's continuation of an episode, on the replica that holds its cache."""
        with self.generation_stub(episode_id) as stub:
            return stub.Generate(generation_request(context, sampling), timeout=self.timeout_s)

    @contextlib.contextmanager
    def generation_stub(self, episode_id: str) -> Iterator[generation_pb2_grpc.GenerationServiceStub]:
        """The stub of the replica that holds this episode's cache: the call made inside the
        block counts as in flight there, and an UNAVAILABLE or RESOURCE_EXHAUSTED it raises
        steers the next calls elsewhere for a while (services/orchestrator/routing.py)."""
        with self.router.route(episode_id) as replica:
            yield replica.stub

    def next_action(self, episode: pb.Episode, stop_reason: int, stop_string: str = "") -> hints_pb2.NextActionResponse:
        request = hints_pb2.NextActionRequest(view=view_of(episode), stop_reason=stop_reason, stop_string=stop_string)
        with PLATFORM_SECONDS.labels("hints").time():
            return self.hints.NextAction(request, timeout=self.timeout_s)

    def execute(self, code: str) -> sandbox_pb2.ExecuteResponse:
        return self.sandbox.Execute(sandbox_pb2.ExecuteRequest(code=code, language="python"), timeout=self.timeout_s)

    def score(self, item: scoring_pb2.ScoreItem) -> scoring_pb2.ScoreResult:
        reply = self.scoring.Score(scoring_pb2.ScoreRequest(items=[item]), timeout=self.timeout_s)
        return reply.results[0]
