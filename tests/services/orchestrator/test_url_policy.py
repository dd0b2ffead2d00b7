"""The front door reads problem sets and writes results only inside the allowed prefixes
(services/orchestrator/url_policy.py), against a real front door on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest

from services.common.channels import channel
from services.common.errors import PermissionDenied
from services.orchestrator.url_policy import check_url_allowed, inside
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc
from startctl.processes import free_port


@pytest.mark.parametrize(
    ("url", "prefix", "expected"),
    [
        ("/data/sets/a.jsonl", "/data", True),
        ("/data/sets/a.jsonl", "/data/", True),
        ("/data-private/a.jsonl", "/data", False),
        ("/data/../etc/passwd", "/data", False),
        ("file:///data/a.jsonl", "/data", True),
        ("s3://bucket/team-a/set.parquet", "s3://bucket/team-a", True),
        ("s3://bucket/team-a/../team-b/set.parquet", "s3://bucket/team-a", False),
        ("S3://bucket/team-a/x", "s3://bucket/team-a/", True),
        ("gs://bucket/team-a/x", "s3://bucket/team-a", False),
        ("http://169.254.169.254/latest/meta-data", "s3://bucket", False),
    ],
)
def test_a_url_is_inside_a_prefix_on_whole_path_components(url: str, prefix: str, expected: bool) -> None:
    assert inside(url, prefix) is expected


def test_a_symbolic_link_does_not_lead_out_of_an_allowed_folder(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape.jsonl").symlink_to("/etc/passwd")
    with pytest.raises(PermissionDenied, match="outside the locations"):
        check_url_allowed("problem_set.url", str(allowed / "escape.jsonl"), [str(allowed)])
    check_url_allowed("problem_set.url", str(allowed / "set.jsonl"), [str(allowed)])
    check_url_allowed("problem_set.url", "/etc/passwd", None)  # no policy: a laptop


@pytest.fixture(scope="module")
def policed_front_door(redis_db, start_service, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001
    root = tmp_path_factory.mktemp("policy")
    allowed, results = root / "problems", root / "results"
    allowed.mkdir()
    addr = start_service("orchestrator", {
        "START_REDIS_URL": redis_db(7),
        "START_ORCHESTRATOR_RESULTS_URL": str(results),
        "START_ORCHESTRATOR_ALLOWED_URL_PREFIXES": f"{allowed}, s3://team-bucket/sets",
        "START_HINTS_ADDR": f"127.0.0.1:{free_port()}",
        "START_GENERATION_ADDR": f"127.0.0.1:{free_port()}",
    })
    with channel(addr) as ch:
        yield orchestrator_pb2_grpc.OrchestratorServiceStub(ch), allowed, results


def test_the_front_door_refuses_problem_sets_and_results_outside_its_prefixes(policed_front_door) -> None:  # noqa: ANN001
    stub, allowed, results = policed_front_door
    problem_file = allowed / "set.jsonl"
    problem_file.write_text(json.dumps({"question": "What is 6 * 7?", "answer": "42"}) + "\n")
    os.symlink("/etc/hostname", allowed / "link.jsonl")
    accepted = stub.SubmitJob(
        opb.SubmitJobRequest(problem_set=opb.ProblemSetRef(url=str(problem_file)), arm=opb.ARM_GREEDY), timeout=30
    )
    assert accepted.created and accepted.job.results_url.startswith(str(results))
    for field, request in [
        ("problem_set.url", opb.SubmitJobRequest(problem_set=opb.ProblemSetRef(url="/etc/passwd"), arm=opb.ARM_GREEDY)),
        ("problem_set.url", opb.SubmitJobRequest(
            problem_set=opb.ProblemSetRef(url=str(allowed / "link.jsonl")), arm=opb.ARM_GREEDY)),
        ("problem_set.url", opb.SubmitJobRequest(
            problem_set=opb.ProblemSetRef(url="http://169.254.169.254/latest/meta-data"), arm=opb.ARM_GREEDY)),
        ("results_url", opb.SubmitJobRequest(
            problem_set=opb.ProblemSetRef(url=str(problem_file)), arm=opb.ARM_GREEDY, results_url="/tmp/elsewhere")),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            stub.SubmitJob(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
        details = caught.value.details()
        assert details.startswith(f"{field}: ") and "START_ORCHESTRATOR_ALLOWED_URL_PREFIXES" in details
        assert "s3://team-bucket/sets" in details, "the message says where files may be"
    inside_results = stub.SubmitJob(opb.SubmitJobRequest(
        problem_set=opb.ProblemSetRef(url=str(problem_file)), arm=opb.ARM_GREEDY, results_url=str(results / "mine"),
        idempotency_key="own-results"), timeout=30)
    assert inside_results.created, "the results root is always allowed"
