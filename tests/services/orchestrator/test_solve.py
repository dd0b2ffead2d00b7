"""Solve, the domain side: one problem with the tool loop, streamed, against real services
(vLLM with the micro model, hints, runsc sandbox, scoring), without Celery or Redis.

Proves what a client of Solve relies on: the events arrive in the episode's order and add
up to its text, the code shown is the code that ran, the episode ends scored; a bad
request names its field; a peer that stays down ends the stream UNAVAILABLE; a client
that hangs up stops the episode and its generation.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from services.common.channels import channel
from services.common.episode import text_of
from services.common.errors import InvalidArgument, Unavailable
from services.common.settings import PeerAddresses
from services.common.text_contract import last_closed_code_block
from services.orchestrator.solve import solve_stream
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2, generation_pb2_grpc
from start.v1 import orchestrator_pb2 as opb
from startctl.processes import free_port, service_process, wait_ready
from tests.services.orchestrator.test_hint_infer_episode import HINT_INFER
from training.micro.problems import make_problems

pytestmark = [pytest.mark.slow, pytest.mark.runsc]

RPC_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Limits:
    """What the servicer passes from its settings (their defaults)."""

    max_question_chars: int = 200_000
    max_total_tokens: int = 131072
    default_max_total_tokens: int = 4096
    default_max_tool_calls: int = 6
    default_max_tool_output_chars: int = 2000
    solve_budget_s: float = 3600.0


DELTA, HINT, TOOL_CODE, TOOL_OUTPUT, FINAL = (
    opb.SOLVE_EVENT_KIND_MODEL_DELTA,
    opb.SOLVE_EVENT_KIND_HINT,
    opb.SOLVE_EVENT_KIND_TOOL_CODE,
    opb.SOLVE_EVENT_KIND_TOOL_OUTPUT,
    opb.SOLVE_EVENT_KIND_FINAL,
)


@pytest.fixture(scope="module")
def peers(start_service, generation_addr: str) -> PeerAddresses:
    sandbox = start_service("sandbox")
    return PeerAddresses(
        generation_addr=generation_addr,
        hints_addr=start_service("hints"),
        sandbox_addr=sandbox,
        scoring_addr=start_service("scoring", {"START_SANDBOX_ADDR": sandbox}),
    )


def solve_request(question: str | None = None) -> opb.SolveRequest:
    (p,) = make_problems(1, seed=3, split="test")
    question = p.question if question is None else question
    problem = pb.Problem(id=p.id, question=question, reference=p.reference, task_type=pb.TASK_TYPE_MATH)
    return opb.SolveRequest(problem=problem, options=HINT_INFER)


async def test_solve_streams_the_episode_in_order_and_its_events_add_up_to_its_text(peers: PeerAddresses) -> None:
    events = [e async for e in solve_stream(solve_request(), Limits(), peers, RPC_TIMEOUT_S)]
    kinds = [e.kind for e in events]
    assert kinds.count(FINAL) == 1 and kinds[-1] == FINAL
    episode = events[-1].episode
    assert episode.status == pb.EPISODE_STATUS_DONE, episode.error
    assert episode.score.reason or episode.score.correct, "the scoring service gave a verdict"

    # The model's text comes first, piece by piece as the engine writes it, then the hint,
    # then the hint's code goes to the sandbox and its output comes back.
    first_hint = kinds.index(HINT)
    assert kinds[0] == DELTA and kinds[:first_hint].count(DELTA) > 1
    assert TOOL_CODE in kinds[first_hint:]
    assert all(kinds[i + 1] == TOOL_OUTPUT for i, kind in enumerate(kinds) if kind == TOOL_CODE)

    # Hints are the episode's hints, with their ids.
    hint_spans = [s for s in episode.spans if s.kind == pb.SPAN_KIND_HINT]
    hints = [e for e in events if e.kind == HINT]
    assert [(e.text, e.hint_id, e.hint_category) for e in hints] == [
        (s.text, s.hint_id, s.hint_category) for s in hint_spans
    ]
    assert all(e.hint_id.startswith("math@") for e in hints)

    # Each TOOL_CODE is the block that ran: the one closed before each output block.
    outputs = [i for i, s in enumerate(episode.spans) if s.kind == pb.SPAN_KIND_TOOL_OUTPUT]
    ran = [last_closed_code_block("".join(s.text for s in episode.spans[:i])) for i in outputs]
    assert [e.text for e in events if e.kind == TOOL_CODE] == ran
    assert [e.text for e in events if e.kind == TOOL_OUTPUT] == [episode.spans[i].text for i in outputs]
    assert len(ran) == episode.tool_calls >= 1

    # Deltas (the model's text and the stop strings the policy writes back), hints and
    # tool outputs are the whole text after the prompt, nothing twice, nothing missing.
    (prompt,) = [s.text for s in episode.spans if s.kind == pb.SPAN_KIND_PROMPT]
    streamed = "".join(e.text for e in events if e.kind in (DELTA, HINT, TOOL_OUTPUT))
    assert streamed == text_of(episode)[len(prompt) :]


async def test_an_empty_question_is_refused_naming_the_field(peers: PeerAddresses) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await anext(solve_stream(solve_request(question="  "), Limits(), peers, RPC_TIMEOUT_S))
    assert refused.value.field == "problem.question"


@pytest.mark.parametrize("share", [0.15, 0.45, 0.8])
async def test_a_solve_past_its_wall_clock_budget_ends_failed_naming_the_setting(
    peers: PeerAddresses, share: float
) -> None:
    # A short budget ends the episode at the next step, not at the client's deadline,
    # wherever it runs out: during a call (DEADLINE_EXCEEDED) or between two calls of a
    # step. Budgets are shares of the same episode's time unbudgeted on this machine (a
    # fixed 0.6 s outlasted the whole episode on a fast CI machine).
    started = time.monotonic()
    unbudgeted = [e async for e in solve_stream(solve_request(), Limits(), peers, RPC_TIMEOUT_S)]
    assert unbudgeted[-1].episode.status == pb.EPISODE_STATUS_DONE
    budget_s = round(share * (time.monotonic() - started), 3)
    started = time.monotonic()
    limits = Limits(solve_budget_s=budget_s)
    events = [e async for e in solve_stream(solve_request(), limits, peers, RPC_TIMEOUT_S)]
    episode = events[-1].episode
    assert events[-1].kind == FINAL and episode.status == pb.EPISODE_STATUS_FAILED
    assert f"wall-clock budget of {budget_s:g} s spent" in episode.error
    assert "START_ORCHESTRATOR_SOLVE_BUDGET_S" in episode.error
    assert time.monotonic() - started < 30


async def test_a_sandbox_that_stays_down_ends_the_stream_unavailable(peers: PeerAddresses) -> None:
    down = peers.model_copy(update={"sandbox_addr": f"127.0.0.1:{free_port()}"})
    events = []
    with pytest.raises(Unavailable) as failed:
        async for event in solve_stream(solve_request(), Limits(), down, RPC_TIMEOUT_S):
            events.append(event)
    assert "after 3 retries: UNAVAILABLE" in failed.value.message
    kinds = [e.kind for e in events]
    assert kinds[-1] == TOOL_CODE, "the code is shown once, however often its run is retried"
    assert kinds.count(TOOL_CODE) == 1 and FINAL not in kinds


async def test_a_step_retried_after_its_text_was_streamed_does_not_stream_it_twice(
    peers: PeerAddresses, tmp_path: Path
) -> None:
    # The hints service frozen while the model writes: the step's call to the policy runs
    # past its deadline, the step is retried (the same greedy text generated again) once
    # the service thaws, and the client gets the text once.
    port = free_port()
    hints = service_process("hints", port, log_dir=tmp_path).start()
    assert hints.proc is not None
    events: list[opb.SolveEvent] = []
    try:
        wait_ready(hints, f"127.0.0.1:{port}", 60)
        frozen = peers.model_copy(update={"hints_addr": f"127.0.0.1:{port}"})
        with capture_logs() as logs:

            async def thaw_after_the_retry() -> None:
                # Thawed once the step has been retried (not after a fixed time: on a busy
                # machine the step may reach its policy call late), or after 60 s at most.
                for _ in range(600):
                    if any(entry["event"] == "retrying step" for entry in logs):
                        break
                    await asyncio.sleep(0.1)
                os.killpg(hints.proc.pid, signal.SIGCONT)

            thaw: asyncio.Task | None = None
            async for event in solve_stream(solve_request(), Limits(), frozen, rpc_timeout_s=3.0):
                if not events:  # the first delta: the first generation step is running
                    os.killpg(hints.proc.pid, signal.SIGSTOP)
                    thaw = asyncio.create_task(thaw_after_the_retry())
                events.append(event)
            if thaw is not None:
                await thaw
    finally:
        os.killpg(hints.proc.pid, signal.SIGCONT)
        hints.stop()
    retried = [entry for entry in logs if entry["event"] == "retrying step"]
    assert any(e["step"] == 1 and e["error"].startswith("DEADLINE_EXCEEDED") for e in retried), retried
    episode = events[-1].episode
    assert episode.status == pb.EPISODE_STATUS_DONE, episode.error
    (prompt,) = [s.text for s in episode.spans if s.kind == pb.SPAN_KIND_PROMPT]
    streamed = "".join(e.text for e in events if e.kind in (DELTA, HINT, TOOL_OUTPUT))
    assert streamed == text_of(episode)[len(prompt) :]


async def test_a_client_that_hangs_up_stops_the_episode_and_its_generation(peers: PeerAddresses) -> None:
    # With the sandbox down, an episode that went on would spend at least 1 + 2 + 4 s in
    # back-off at its tool call: its thread ending sooner proves the hang-up stopped it.
    down = peers.model_copy(update={"sandbox_addr": f"127.0.0.1:{free_port()}"})
    stream = solve_stream(solve_request(), Limits(), down, RPC_TIMEOUT_S)
    async for event in stream:
        if event.kind == DELTA:
            break  # the engine is writing this episode's text now
    await stream.aclose()
    deadline = time.monotonic() + 5
    while any(t.name == "solve" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the episode's thread still runs after its client left"
        time.sleep(0.05)
    # The engine drops the cancelled sequence at its next scheduling step.
    with channel(peers.generation_addr) as ch:
        engine = generation_pb2_grpc.GenerationServiceStub(ch)
        while engine.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=5).unfinished_requests:
            assert time.monotonic() < deadline, "the engine still decodes for a client that left"
            time.sleep(0.05)
