"""The orchestrator's front door as a real process over gRPC, with real Redis and a real worker.

These tests need no model: they prove what the front door accepts, refuses and reports,
and that a worker turns an unreachable peer into a FAILED episode rather than a hang.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import redis

from services.common.channels import channel
from services.common.episode import append_span, new_episode, snapshots_of
from services.orchestrator.store import EpisodeStore
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc
from startctl import job_cmd
from startctl.processes import free_port


@pytest.fixture(scope="module")
def front_door_env(redis_db, start_service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    hints_addr = start_service("hints")
    return {
        "START_REDIS_URL": redis_db(5),
        "START_ORCHESTRATOR_RESULTS_URL": str(tmp_path_factory.mktemp("results")),
        "START_HINTS_ADDR": hints_addr,
        # Nothing listens here: steps that need the model fail fast with UNAVAILABLE.
        "START_GENERATION_ADDR": f"127.0.0.1:{free_port()}",
    }


@pytest.fixture(scope="module")
def orchestrator_addr(start_service, front_door_env: dict[str, str]) -> str:
    return start_service("orchestrator", front_door_env)


@pytest.fixture(scope="module")
def orchestrator(orchestrator_addr: str) -> orchestrator_pb2_grpc.OrchestratorServiceStub:
    with channel(orchestrator_addr) as ch:
        yield orchestrator_pb2_grpc.OrchestratorServiceStub(ch)


def submit(stub: orchestrator_pb2_grpc.OrchestratorServiceStub, question: str = "What is 17 * 23?", **kw) -> str:
    request = opb.SubmitEpisodeRequest(
        problem=pb.Problem(question=question, reference="391", task_type=kw.pop("task_type", pb.TASK_TYPE_MATH)),
        options=kw.pop("options", pb.EpisodeOptions(hints_enabled=True, reflection_hint_probability=1.0)),
        **kw,
    )
    return stub.SubmitEpisode(request, timeout=10).episode_id


def test_submitted_episode_is_stored_pending_with_defaults_and_its_first_step_queued(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub, front_door_env: dict[str, str]
) -> None:
    episode_id = submit(orchestrator)
    episode = orchestrator.GetEpisode(opb.GetEpisodeRequest(episode_id=episode_id), timeout=10)
    assert episode.status == pb.EPISODE_STATUS_PENDING
    assert (episode.options.max_tool_calls, episode.options.max_total_tokens) == (6, 4096)
    assert redis.Redis.from_url(front_door_env["START_REDIS_URL"]).llen("start.generate") >= 1


def test_same_idempotency_key_runs_one_episode(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub, front_door_env: dict[str, str]
) -> None:
    queue = redis.Redis.from_url(front_door_env["START_REDIS_URL"])
    before = queue.llen("start.generate")
    first = submit(orchestrator, episode_id="problem-7-sample-0")
    second = submit(orchestrator, question="another question", episode_id="problem-7-sample-0")
    assert first == second == "problem-7-sample-0"
    assert queue.llen("start.generate") == before + 1
    stored = orchestrator.GetEpisode(opb.GetEpisodeRequest(episode_id=first), timeout=10)
    assert stored.problem.question == "What is 17 * 23?"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"question": "   "}, "problem.question"),
        ({"task_type": pb.TASK_TYPE_UNSPECIFIED}, "problem.task_type"),
        ({"task_type": 42}, "problem.task_type"),
        ({"options": pb.EpisodeOptions(reflection_hint_probability=1.5)}, "reflection_hint_probability"),
        ({"options": pb.EpisodeOptions(max_tool_calls=1000)}, "max_tool_calls"),
        ({"options": pb.EpisodeOptions(max_total_tokens=10**9)}, "max_total_tokens"),
        ({"options": pb.EpisodeOptions(sampling=pb.SamplingParams(temperature=-1))}, "temperature"),
        ({"options": pb.EpisodeOptions(hint_library="astrology")}, "hint_library"),
        ({"episode_id": "no spaces please"}, "episode_id"),
    ],
)
def test_bad_submissions_get_invalid_argument_naming_the_field(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub, kwargs: dict, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        submit(orchestrator, **kwargs)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in failure.value.details()


def test_unknown_episode_is_not_found(orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        orchestrator.GetEpisode(opb.GetEpisodeRequest(episode_id="never-submitted"), timeout=10)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_watching_an_episode_that_does_not_finish_ends_with_deadline_exceeded(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub,
) -> None:
    episode_id = submit(orchestrator)
    started = time.monotonic()
    snapshots = []
    request = opb.WatchEpisodeRequest(episode_id=episode_id, timeout_s=1.5)
    with pytest.raises(grpc.RpcError) as failure:
        for snapshot in snapshots_of(orchestrator.WatchEpisode(request)):
            snapshots.append(snapshot)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timeout_s" in failure.value.details()
    assert [s.status for s in snapshots] == [pb.EPISODE_STATUS_PENDING]
    assert time.monotonic() - started < 10


def test_many_more_watchers_than_redis_connections_each_get_their_stream(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub,
) -> None:
    # 150 watchers of 3 episodes (no worker runs them): more than the Redis client's pool
    # of 100 connections, which a subscription per watcher would exhaust.
    episode_ids = [submit(orchestrator, question=f"What is {i} * 7?") for i in range(3)]

    def watch(episode_id: str) -> tuple[list[int], grpc.StatusCode]:
        statuses = []
        try:
            request = opb.WatchEpisodeRequest(episode_id=episode_id, timeout_s=3)
            for snapshot in snapshots_of(orchestrator.WatchEpisode(request)):
                statuses.append(snapshot.status)
        except grpc.RpcError as failure:
            return statuses, failure.code()
        return statuses, grpc.StatusCode.OK

    with ThreadPoolExecutor(max_workers=150) as pool:
        results = list(pool.map(watch, [episode_ids[i % 3] for i in range(150)]))
    assert all(r == ([pb.EPISODE_STATUS_PENDING], grpc.StatusCode.DEADLINE_EXCEEDED) for r in results), {
        str(r) for r in results
    }


def test_watch_sends_each_step_only_its_new_spans_and_the_client_rebuilds_the_episode(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub, front_door_env: dict[str, str]
) -> None:
    # The test plays the worker: it saves each step through the store, as tasks.py does,
    # so the episode grows by known spans without a model. A long prompt must be sent once.
    store = EpisodeStore.from_url(front_door_env["START_REDIS_URL"])
    question = "What is 17 * 23? Show every step. " * 100
    episode = new_episode(pb.Problem(question=question, reference="391"), pb.EpisodeOptions(), "watch-changes")
    append_span(episode, pb.SPAN_KIND_PROMPT, question)
    assert store.create(episode)

    messages: queue.Queue = queue.Queue()

    def watch() -> None:
        request = opb.WatchEpisodeRequest(episode_id=episode.id, timeout_s=30)
        try:
            for change in orchestrator.WatchEpisode(request, timeout=60):
                messages.put(change)
        except grpc.RpcError as failure:
            messages.put(failure)
        messages.put(None)

    watcher = threading.Thread(target=watch)
    watcher.start()
    changes = [messages.get(timeout=10)]  # subscribed by now: no later step can be missed
    steps = [
        (pb.SPAN_KIND_MODEL, "Let me compute.", "", [11, 12, 13]),
        (pb.SPAN_KIND_MODEL, " 17 * 23 = 391.", "", [14, 15, 16, 17]),  # merges into the model span
        (pb.SPAN_KIND_HINT, " Wait, let me check.", "math@1", []),
        (pb.SPAN_KIND_MODEL, " 17 * 20 + 17 * 3 = 391.", "", [18, 19]),
    ]
    for step, (kind, text, hint_id, token_ids) in enumerate(steps, start=1):
        append_span(episode, kind, text, hint_id=hint_id, token_ids=token_ids)
        episode.steps = step
        episode.status = pb.EPISODE_STATUS_DONE if step == len(steps) else pb.EPISODE_STATUS_RUNNING
        assert store.save(episode, expected_step=step - 1)
        changes.append(messages.get(timeout=10))
    assert messages.get(timeout=10) is None, "a finished episode ends the stream"
    watcher.join(timeout=10)

    assert all(isinstance(c, opb.EpisodeChange) for c in changes), changes
    assert changes[0].spans_from == 0 and changes[0].episode.spans[0].text == question
    # Each step resends only the span it grew or added, never the prompt.
    assert [c.spans_from for c in changes[1:]] == [1, 1, 2, 3]
    assert [[s.text for s in c.episode.spans] for c in changes[1:]] == [
        ["Let me compute."],
        ["Let me compute. 17 * 23 = 391."],
        [" Wait, let me check."],
        [" 17 * 20 + 17 * 3 = 391."],
    ]
    assert not any(c.episode.HasField("problem") for c in changes[1:]), "the problem is sent once"
    assert all(c.ByteSize() < 200 for c in changes[1:])

    snapshots = list(snapshots_of(changes))
    assert [s.steps for s in snapshots] == [0, 1, 2, 3, 4]
    assert snapshots[-1] == orchestrator.GetEpisode(opb.GetEpisodeRequest(episode_id=episode.id), timeout=10)
    assert snapshots[-1] == episode


def test_unreachable_generation_fails_the_episode_after_retries_with_the_error(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub,
    front_door_env: dict[str, str],
    start_worker,
) -> None:
    episode_id = submit(orchestrator)
    start_worker({**front_door_env, "START_WORKER_MAX_RETRIES": "2", "START_WORKER_RETRY_BACKOFF_S": "0.2"})
    request = opb.WatchEpisodeRequest(episode_id=episode_id, timeout_s=60)
    last = list(snapshots_of(orchestrator.WatchEpisode(request, timeout=90)))[-1]
    assert last.status == pb.EPISODE_STATUS_FAILED
    assert "UNAVAILABLE" in last.error and "after 2 retries" in last.error


def job_request(**kw) -> opb.SubmitJobRequest:
    problems = [pb.Problem(id=f"p{i}", question=f"What is {i} * 7?", reference=str(7 * i)) for i in range(3)]
    return opb.SubmitJobRequest(
        inline=kw.pop("inline", opb.InlineProblems(problems=problems)), arm=kw.pop("arm", opb.ARM_GREEDY), **kw
    )


def test_a_job_is_accepted_reported_listed_and_cancelled_over_grpc(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub,
) -> None:
    reply = orchestrator.SubmitJob(job_request(idempotency_key="front-door-job"), timeout=30)
    job = reply.job
    assert reply.created and job.id.startswith("job-") and job.counts.episodes == 3
    assert job.options.max_tool_calls == 6 and job.options.sampling.temperature == 0
    again = orchestrator.SubmitJob(job_request(idempotency_key="front-door-job"), timeout=30)
    assert not again.created and again.job.id == job.id
    assert job.id in [j.id for j in orchestrator.ListJobs(opb.ListJobsRequest(), timeout=10).jobs]
    page = orchestrator.ListEpisodes(opb.ListEpisodesRequest(job_id=job.id, page_size=2), timeout=10)
    assert [e.problem_index for e in page.episodes] == [0, 1] and page.next_page_token == "2"
    cancelled = orchestrator.CancelJob(opb.CancelJobRequest(job_id=job.id), timeout=10)
    assert cancelled.status in (opb.JOB_STATUS_CANCELLING, opb.JOB_STATUS_CANCELLED)


def test_the_cli_watches_a_job_for_longer_than_one_watch_call_may_last(
    orchestrator_addr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`job submit --wait` and `eval` follow a job for a day by default, where one WatchJob
    may last an hour: the client watches again until the job ends or its own time is up."""
    monkeypatch.setattr(job_cmd, "WATCH_WINDOW_S", 1.0)  # an hour's window, scaled down
    problems = [pb.Problem(id=f"p{i}", question=f"What is {i} * 7?", reference=str(7 * i)) for i in range(50)]
    door = job_cmd.FrontDoor(orchestrator_addr)
    job = door.submit(job_request(inline=opb.InlineProblems(problems=problems), idempotency_key="long-watch")).job
    try:
        started, states = time.monotonic(), 0
        for state in door.watch(job.id, timeout_s=10 * 3600, interval_s=0.25):
            assert state.id == job.id and state.status not in job_cmd.FINISHED  # nothing runs it
            states += 1
            if time.monotonic() - started > 3:  # three windows
                break
        assert states >= 8
        # Its own time up, the watch ends with DEADLINE_EXCEEDED, after that time.
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as ended:
            list(door.watch(job.id, timeout_s=2.5, interval_s=0.25))
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - started >= 2
    finally:
        door.stub.CancelJob(opb.CancelJobRequest(job_id=job.id), timeout=10)
        door.close()


@pytest.mark.parametrize(
    ("request_", "code", "names"),
    [
        (job_request(arm=opb.ARM_UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT, "arm"),
        (job_request(samples=-1), grpc.StatusCode.INVALID_ARGUMENT, "samples"),
        (job_request(inline=opb.InlineProblems(problems=[pb.Problem(question=" ")])),
         grpc.StatusCode.INVALID_ARGUMENT, "row 1 field question"),
        (opb.SubmitJobRequest(problem_set=opb.ProblemSetRef(url="/nonexistent/set.jsonl"), arm=opb.ARM_GREEDY),
         grpc.StatusCode.INVALID_ARGUMENT, "/nonexistent/set.jsonl"),
        (opb.SubmitJobRequest(problem_set=opb.ProblemSetRef(url="x.jsonl", format="mmlu"), arm=opb.ARM_GREEDY),
         grpc.StatusCode.INVALID_ARGUMENT, "problem_set.format"),
    ],
)
def test_a_bad_job_gets_invalid_argument_naming_what_to_fix(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub, request_, code, names: str  # noqa: ANN001
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        orchestrator.SubmitJob(request_, timeout=30)
    assert caught.value.code() == code
    assert names in caught.value.details()


def test_unknown_and_malformed_job_ids_are_told_apart(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        orchestrator.GetJob(opb.GetJobRequest(job_id="job-0123456789abcdef"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        orchestrator.GetJob(opb.GetJobRequest(job_id="../etc"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "job_id" in caught.value.details()
