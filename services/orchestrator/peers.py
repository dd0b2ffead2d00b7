"""The orchestrator's calls to the other services, in one place, with deadlines.

Blocking gRPC stubs (Celery steps run in worker threads, Solve in a thread per call),
one channel per peer per process: every `Peers` of a process shares it, so a `Peers` per
Solve call costs no connection. `TRANSIENT` names the status codes worth a retry of the
step: the peer is down, restarting, overloaded or slow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import grpc

from services.common.channels import channel
from services.common.settings import PeerAddresses
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
    _max_model_len: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.generation = generation_pb2_grpc.GenerationServiceStub(_shared_channel(self.addresses.generation_addr))
        self.hints = hints_pb2_grpc.HintServiceStub(_shared_channel(self.addresses.hints_addr))
        self.sandbox = sandbox_pb2_grpc.SandboxServiceStub(_shared_channel(self.addresses.sandbox_addr))
        self.scoring = scoring_pb2_grpc.ScoringServiceStub(_shared_channel(self.addresses.scoring_addr))

    def render_chat(self, question: str) -> str:
        request = generation_pb2.RenderChatRequest(
            messages=[generation_pb2.ChatMessage(role="user", content=question)], add_generation_prompt=True
        )
        return self.generation.RenderChat(request, timeout=self.timeout_s).text

    def max_model_len(self) -> int:
        if not self._max_model_len:
            reply = self.generation.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=self.timeout_s)
            self._max_model_len = reply.max_model_len
        return self._max_model_len

    def tokenize_pieces(self, texts: list[str]) -> list[list[int]]:
        """Ids of pieces of an episode's text, each on its own, in one call (no special
        tokens: see context_token_ids)."""
        reply = self.generation.Tokenize(generation_pb2.TokenizeRequest(pieces=texts), timeout=self.timeout_s)
        return [list(piece.token_ids) for piece in reply.pieces]

    def generate(self, prompt_token_ids: list[int], sampling: pb.SamplingParams) -> generation_pb2.GenerateResponse:
        request = generation_pb2.GenerateRequest(prompt_token_ids=prompt_token_ids, sampling=sampling)
        return self.generation.Generate(request, timeout=self.timeout_s)

    def next_action(self, episode: pb.Episode, stop_reason: int, stop_string: str = "") -> hints_pb2.NextActionResponse:
        request = hints_pb2.NextActionRequest(episode=episode, stop_reason=stop_reason, stop_string=stop_string)
        return self.hints.NextAction(request, timeout=self.timeout_s)

    def execute(self, code: str) -> sandbox_pb2.ExecuteResponse:
        return self.sandbox.Execute(sandbox_pb2.ExecuteRequest(code=code, language="python"), timeout=self.timeout_s)

    def score(self, item: scoring_pb2.ScoreItem) -> scoring_pb2.ScoreResult:
        reply = self.scoring.Score(scoring_pb2.ScoreRequest(items=[item]), timeout=self.timeout_s)
        return reply.results[0]
