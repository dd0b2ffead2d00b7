"""The orchestrator's calls to the other services, in one place, with deadlines and retries.

Blocking gRPC stubs (Celery steps run in worker threads, Solve in a thread per call),
one channel per peer per process: every `Peers` of a process shares it, so a `Peers` per
Solve call costs no connection. `TRANSIENT` names the status codes worth a retry of the
step: the peer is down, restarting, overloaded or slow.

Deadlines: each call's deadline is `timeout_s` (the per-call cap), or what is left of the
episode's wall-clock budget when that is less (`Peers.until`, set by `steps.take_step`).

Retries, two layers, one way each (docs/orchestrator.md, "Deadlines and retries"):
- A call: gRPC's own retry policy (service config, `RETRY_SERVICE_CONFIG`) retries an
  UNAVAILABLE answer of the calls that are pure functions of their request: RenderChat,
  ModelInfo, Tokenize, NextAction, ListHints, Score, DetectRepetition. gRPC waits
  random(0, min(initialBackoff * multiplier^(n-1), maxBackoff)) between attempts (full
  jitter, gRFC A6) and stops at the call's deadline. Not retried there: Generate and
  GenerateStream (a retry costs a whole generation, and a stream already half sent to a
  Solve client cannot be taken back) and Execute (it runs the model's code again, in a
  fresh sandbox: costly, and a program that reads the clock or random draws may print
  something else); their failure goes to the step.
- A step: the Celery task (tasks.py) or Solve retries the whole step on a `TRANSIENT`
  error, with jittered exponential back-off; the step starts again from the saved episode,
  so nothing it half did is kept. That is what rides out a peer restarting for seconds or
  minutes (a vLLM engine loads in a minute or two).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import time
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


# The calls gRPC itself may send again after UNAVAILABLE: each is a pure function of its
# request, so a second attempt has no effect the first did not (see the module docstring).
IDEMPOTENT_METHODS = (
    ("start.v1.GenerationService", "RenderChat"),
    ("start.v1.GenerationService", "ModelInfo"),
    ("start.v1.GenerationService", "Tokenize"),
    ("start.v1.HintService", "NextAction"),
    ("start.v1.HintService", "ListHints"),
    ("start.v1.ScoringService", "Score"),
    ("start.v1.ScoringService", "DetectRepetition"),
)
# 5 attempts is gRPC's own ceiling; the waits between them (at most 0.2, 0.4, 0.8, 1.6 s,
# each drawn from zero up) cover a peer's blip or a connection reset, not a restart, which
# the step's retry covers.
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {"name": [{"service": svc, "method": m} for svc, m in IDEMPOTENT_METHODS], "retryPolicy": RETRY_POLICY}
        ]
    }
)


@functools.cache
def _shared_channel(addr: str) -> grpc.Channel:
    """Channels are thread-safe and multiplex calls: one per address serves every Peers."""
    return channel(addr, service_config=RETRY_SERVICE_CONFIG)


def generation_request(
    context: list[generation_pb2.ContextPiece], sampling: pb.SamplingParams
) -> generation_pb2.GenerateRequest:
    """An episode's Generate: its context as pieces, max_tokens cut to the context's room."""
    return generation_pb2.GenerateRequest(context=context, sampling=sampling, fit_to_context=True)


class TransientError(Exception):
    """A failure that a later retry of the same step may not see (a sandbox hiccup)."""


class BudgetSpent(TransientError):
    """The episode's wall-clock budget ran out between two calls of a step. Retried as any
    transient failure: the retry's `take_step` finds the budget spent and ends the episode
    FAILED, saying so and naming the setting (the same end as a call cut by the budget's
    deadline, DEADLINE_EXCEEDED)."""


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
    """`timeout_s` caps each call; `deadline_unix` (0: none) is when the episode's budget
    ends: a call gets what is left of it when that is less than the cap."""

    addresses: PeerAddresses
    timeout_s: float
    deadline_unix: float = 0.0

    def until(self, deadline_unix: float) -> Peers:
        """These peers, for the calls of one step of an episode whose budget ends then.
        A shallow copy: stubs, channels and the router are shared; a worker's threads
        each take their own copy, so no step sees another's deadline."""
        bounded = copy.copy(self)
        bounded.deadline_unix = deadline_unix
        return bounded

    def call_timeout(self) -> float:
        """The next call's deadline, in seconds from now; BudgetSpent if nothing is left."""
        if not self.deadline_unix:
            return self.timeout_s
        left = self.deadline_unix - time.time()
        if left <= 0:
            raise BudgetSpent(f"the episode's wall-clock budget ended {-left:.1f} s ago")
        return min(self.timeout_s, left)

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
        return self.generation.RenderChat(request, timeout=self.call_timeout()).text

    def generate(
        self, episode_id: str, context: list[generation_pb2.ContextPiece], sampling: pb.SamplingParams
    ) -> generation_pb2.GenerateResponse:
        """One step's continuation of an episode, on the replica that holds its cache."""
        with self.generation_stub(episode_id) as stub:
            return stub.Generate(generation_request(context, sampling), timeout=self.call_timeout())

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
            return self.hints.NextAction(request, timeout=self.call_timeout())

    def execute(self, code: str) -> sandbox_pb2.ExecuteResponse:
        request = sandbox_pb2.ExecuteRequest(code=code, language="python")
        return self.sandbox.Execute(request, timeout=self.call_timeout())

    def score(self, item: scoring_pb2.ScoreItem) -> scoring_pb2.ScoreResult:
        reply = self.scoring.Score(scoring_pb2.ScoreRequest(items=[item]), timeout=self.call_timeout())
        return reply.results[0]
