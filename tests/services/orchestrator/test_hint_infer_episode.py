"""Hint-infer end to end: every service a real process (vLLM with the micro model, runsc,
scoring, hints, the orchestrator), Celery over a real Redis, real `startctl worker`s.

Proves what a user relies on: an episode with hints gets a hint, runs the model's code in
gVisor and shows its output, and is scored; and a worker killed mid-episode loses nothing.
"""

from __future__ import annotations

import os
import signal
import time
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.channels import channel
from services.common.episode import snapshots_of
from services.common.text_contract import format_tool_output, last_closed_code_block
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc, sandbox_pb2, sandbox_pb2_grpc
from startctl.processes import free_port
from training.micro.problems import make_problems

pytestmark = [pytest.mark.slow, pytest.mark.runsc]

HINT_INFER = pb.EpisodeOptions(
    sampling=pb.SamplingParams(temperature=0.0, max_tokens=400),
    hints_enabled=True,
    reflection_hint_probability=1.0,
    max_think_hints=1,
    max_tool_calls=6,
    seed=11,
    max_total_tokens=1200,
)


@pytest.fixture(scope="module")
def platform(redis_db, start_service, generation_addr: str) -> dict[str, str]:
    sandbox = start_service("sandbox")
    env = {
        "START_REDIS_URL": redis_db(6),
        "START_GENERATION_ADDR": generation_addr,
        "START_HINTS_ADDR": start_service("hints"),
        "START_SANDBOX_ADDR": sandbox,
        "START_SCORING_ADDR": start_service("scoring", {"START_SANDBOX_ADDR": sandbox}),
    }
    env["START_ORCHESTRATOR_ADDR"] = start_service("orchestrator", env)
    return env


def submit_all(addr: str, problems: list, tag: str) -> list[str]:
    with channel(addr) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        ids = []
        for p in problems:
            problem = pb.Problem(id=p.id, question=p.question, reference=p.reference, task_type=pb.TASK_TYPE_MATH)
            request = opb.SubmitEpisodeRequest(problem=problem, options=HINT_INFER, episode_id=f"{tag}-{p.id}")
            ids.append(stub.SubmitEpisode(request, timeout=10).episode_id)
        return ids


def get(addr: str, episode_id: str) -> pb.Episode:
    with channel(addr) as ch:
        return orchestrator_pb2_grpc.OrchestratorServiceStub(ch).GetEpisode(
            opb.GetEpisodeRequest(episode_id=episode_id), timeout=10
        )


def test_hint_infer_episode_gets_a_hint_runs_code_in_gvisor_and_is_scored(platform, start_worker) -> None:
    metrics_port = free_port()
    start_worker({**platform, "START_WORKER_METRICS_PORT": str(metrics_port)})
    (problem,) = make_problems(1, seed=3, split="test")
    (episode_id,) = submit_all(platform["START_ORCHESTRATOR_ADDR"], [problem], "e2e")
    with channel(platform["START_ORCHESTRATOR_ADDR"]) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        request = opb.WatchEpisodeRequest(episode_id=episode_id, timeout_s=300)
        snapshots = list(snapshots_of(stub.WatchEpisode(request)))
    episode = snapshots[-1]
    assert episode.status == pb.EPISODE_STATUS_DONE, episode.error
    steps = [s.steps for s in snapshots]
    assert steps == list(range(steps[0], steps[-1] + 1)), "one snapshot per step, in order"
    kinds = [span.kind for span in episode.spans]
    assert kinds[0] == pb.SPAN_KIND_PROMPT and kinds.count(pb.SPAN_KIND_PROMPT) == 1
    hints = [span for span in episode.spans if span.kind == pb.SPAN_KIND_HINT]
    assert hints and all(h.hint_id.startswith("math@") for h in hints)
    assert episode.think_hints + episode.reflection_hints == len(hints)
    assert episode.tool_calls >= 1

    # The output block after the model's code is what that code prints under gVisor.
    first_output = kinds.index(pb.SPAN_KIND_TOOL_OUTPUT)
    code = last_closed_code_block("".join(span.text for span in episode.spans[:first_output]))
    with channel(platform["START_SANDBOX_ADDR"]) as ch:
        run = sandbox_pb2_grpc.SandboxServiceStub(ch).Execute(sandbox_pb2.ExecuteRequest(code=code), timeout=60)
    assert run.status == sandbox_pb2.EXECUTION_STATUS_OK and run.stdout.strip()
    assert episode.spans[first_output].text == format_tool_output(run.stdout)

    assert episode.score.reason or episode.score.correct, "the scoring service gave a verdict"
    assert episode.usage.prompt_tokens > 0 and episode.generated_tokens > 0
    assert episode.usage.cached_prompt_tokens > 0, "continuations reuse the engine's prefix cache"
    written = [s for s in episode.spans if s.kind in (pb.SPAN_KIND_MODEL, pb.SPAN_KIND_TOOL_CODE) and s.token_ids]
    assert written, "what the model wrote keeps the engine's ids, to be sent back as ids"
    assert episode.generation_s > 0 and episode.tool_s > 0
    assert episode.generation_s + episode.tool_s < episode.finished_unix - episode.created_unix

    # The worker's Prometheus endpoint counts what it did.
    metrics = {
        (m.name, tuple(sorted(s.labels.items()))): s.value
        for m in text_string_to_metric_families(urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode())
        for s in m.samples
    }
    saved = lambda action: metrics[("start_worker_steps", (("action", action), ("outcome", "saved")))]  # noqa: E731
    assert saved("generate") >= 2 and saved("run_tool") == episode.tool_calls and saved("finish") == 1
    assert metrics[("start_worker_episodes_finished", (("status", "done"),))] == 1


def test_killed_worker_loses_no_episode(platform, start_worker) -> None:
    env = {**platform, "START_WORKER_VISIBILITY_TIMEOUT_S": "8"}
    addr = platform["START_ORCHESTRATOR_ADDR"]
    problems = make_problems(3, seed=5, split="test")
    first = start_worker(env)
    ids = submit_all(addr, problems, "kill")
    deadline = time.monotonic() + 120
    while sum(get(addr, i).steps for i in ids) < 4:
        assert time.monotonic() < deadline, "episodes did not start"
        time.sleep(0.05)
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    at_kill = {i: get(addr, i) for i in ids}
    assert any(e.status not in (pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED) for e in at_kill.values())

    start_worker(env)
    deadline = time.monotonic() + 300
    finished = {}
    while len(finished) < len(ids):
        assert time.monotonic() < deadline, f"not finished: {set(ids) - set(finished)}"
        for i in ids:
            episode = get(addr, i)
            if episode.status in (pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED):
                finished[i] = episode
        time.sleep(0.5)
    for episode in finished.values():
        assert episode.status == pb.EPISODE_STATUS_DONE, episode.error
        assert [s.kind for s in episode.spans].count(pb.SPAN_KIND_PROMPT) == 1
        assert episode.steps >= at_kill[episode.id].steps


def test_episodes_wait_out_a_full_sandbox_instead_of_failing(platform, start_service, start_worker) -> None:
    # One warm sandbox and no queue: of 8 episodes on 4 worker threads, many find it busy
    # (RESOURCE_EXHAUSTED) at their tool calls, more often than the fault retries allow.
    tiny = start_service("sandbox", {"START_SANDBOX_POOL_SIZE": "1", "START_SANDBOX_MAX_QUEUE": "0"})
    env = {**platform, "START_SANDBOX_ADDR": tiny, "START_WORKER_MAX_RETRIES": "0"}
    env["START_ORCHESTRATOR_ADDR"] = start_service("orchestrator", env)
    worker = start_worker(env)
    ids = submit_all(env["START_ORCHESTRATOR_ADDR"], make_problems(8, seed=9, split="test"), "busy")
    deadline = time.monotonic() + 300
    episodes = {}
    while len(episodes) < len(ids):
        assert time.monotonic() < deadline, f"not finished: {set(ids) - set(episodes)}"
        for i in set(ids) - set(episodes):
            episode = get(env["START_ORCHESTRATOR_ADDR"], i)
            if episode.status in (pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED):
                episodes[i] = episode
        time.sleep(0.5)
    assert all(e.status == pb.EPISODE_STATUS_DONE for e in episodes.values()), [e.error for e in episodes.values()]
    assert sum(e.tool_calls for e in episodes.values()) >= 8
    assert "Retry in" in worker.tail(100_000), "the sandbox was never busy: the test did not test waiting"
