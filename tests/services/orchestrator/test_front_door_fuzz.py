"""Every RPC of the orchestrator's front door fed random requests built from the proto
descriptors (tests/rpc_fuzz.py), against the real front door over a real Redis: each
answer is OK or a status that says what to fix, with a message, within its deadline."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings

from services.common.channels import channel
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from startctl.processes import free_port
from tests.rpc_fuzz import call, requests

_PROBLEM = pb.Problem(id="p1", question="What is 17 * 23?", reference="391", task_type=pb.TASK_TYPE_MATH)
SEEDS: dict[str, Message] = {
    "SubmitEpisode": opb.SubmitEpisodeRequest(problem=_PROBLEM),
    "GetEpisode": opb.GetEpisodeRequest(episode_id="e-1"),
    "WatchEpisode": opb.WatchEpisodeRequest(episode_id="e-1", timeout_s=1),
    "SubmitJob": opb.SubmitJobRequest(inline=opb.InlineProblems(problems=[_PROBLEM]), arm=opb.ARM_GREEDY),
    "GetJob": opb.GetJobRequest(job_id="job-1"),
    "WatchJob": opb.WatchJobRequest(job_id="job-1"),
    "ListJobs": opb.ListJobsRequest(),
    "CancelJob": opb.CancelJobRequest(job_id="job-1"),
    "ListEpisodes": opb.ListEpisodesRequest(job_id="job-1"),
    "EvaluateJob": opb.EvaluateJobRequest(job_id="job-1"),
}
# Solve runs the episode against the model, which is not there: a valid request is
# UNAVAILABLE after the step's retries (seconds each), so it has its own, smaller, run.
SOLVE_EXAMPLES = 10


@pytest.fixture(scope="module")
def dead_generation_addr() -> str:
    """Where the front door looks for the model: nothing listens there."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def front_door(redis_db, start_service, dead_generation_addr: str, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    env = {
        "START_REDIS_URL": redis_db(7),
        "START_ORCHESTRATOR_RESULTS_URL": str(tmp_path_factory.mktemp("fuzz-results")),
        "START_HINTS_ADDR": start_service("hints"),
        "START_GENERATION_ADDR": dead_generation_addr,
    }
    with channel(start_service("orchestrator", env)) as ch:
        yield ch


def _in_the_results_root(request: Message) -> Message:
    """The front door writes a job's results where its request says (docs/jobs.md); a
    random relative path would land in the test's working directory, so the fuzz leaves
    that one field to the service's own results root."""
    if isinstance(request, opb.SubmitJobRequest):
        request.ClearField("results_url")
    return request


METHODS = list(opb.DESCRIPTOR.services_by_name["OrchestratorService"].methods)


@pytest.mark.parametrize("method", [m for m in METHODS if m.name != "Solve"], ids=lambda m: m.name)
def test_the_front_door_answers_any_request_with_a_status_that_says_what_to_fix(front_door, method) -> None:  # noqa: ANN001
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(request=requests(method.input_type, SEEDS.get(method.name)).map(_in_the_results_root))
    def check(request: Message) -> None:
        call(front_door, method, request, timeout_s=30)

    check()


@pytest.mark.slow
def test_solve_answers_any_request_with_a_status_that_says_what_to_fix(front_door, dead_generation_addr: str) -> None:  # noqa: ANN001
    solve = opb.DESCRIPTOR.services_by_name["OrchestratorService"].methods_by_name["Solve"]

    @settings(max_examples=SOLVE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(request=requests(solve.input_type, opb.SolveRequest(problem=_PROBLEM)))
    def check(request: Message) -> None:
        try:
            call(front_door, solve, request, timeout_s=60)
        except AssertionError as failure:
            # The model this front door was given is not there, and the answer names where
            # it was looked for.
            if "UNAVAILABLE" in str(failure) and dead_generation_addr in str(failure):
                return
            raise

    check()
