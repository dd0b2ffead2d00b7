"""The scoring service over gRPC: batches graded in parallel, hostile answers cut off by
the per-answer budget while the service keeps serving, bad input refused with the field."""

from __future__ import annotations

import grpc
import pytest

from services.common.channels import channel
from start.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc
from startctl.processes import free_port
from tests.services.scoring.labelled import labelled_cases

MATH = common_pb2.TASK_TYPE_MATH
CHOICE = common_pb2.TASK_TYPE_MULTIPLE_CHOICE
# Escapes every cheap guard and makes sympy compute the factorial of ten million.
HANGS_SYMPY = r"$\boxed{(10^{7})!}$"


@pytest.fixture(scope="module")
def scoring(start_service) -> scoring_pb2_grpc.ScoringServiceStub:
    addr = start_service(
        "scoring",
        {
            "START_SCORING_WORKERS": "2",
            "START_SCORING_PER_ANSWER_TIMEOUT_S": "5",
            "START_SCORING_MAX_BATCH": "400",
            "START_SCORING_MAX_RESPONSE_BYTES": "1500000",
        },
    )
    with channel(addr) as ch:
        yield scoring_pb2_grpc.ScoringServiceStub(ch)


def _item(task_type: int, response: str, reference: str) -> scoring_pb2.ScoreItem:
    return scoring_pb2.ScoreItem(task_type=task_type, response=response, reference=reference)


def test_batch_of_the_labelled_set_is_graded_in_order(scoring) -> None:
    cases = labelled_cases("math", "multiple_choice")
    items = [_item(MATH if c["task_type"] == "math" else CHOICE, c["response"], c["reference"]) for c in cases]
    reply = scoring.Score(scoring_pb2.ScoreRequest(items=items), timeout=120)
    assert [r.correct for r in reply.results] == [c["label"] for c in cases]


def test_answer_that_hangs_sympy_is_reported_as_timeout_and_service_keeps_serving(scoring) -> None:
    items = [_item(MATH, HANGS_SYMPY, "1"), _item(MATH, r"$\boxed{x^2-1}$", "(x-1)(x+1)")]
    reply = scoring.Score(scoring_pb2.ScoreRequest(items=items), timeout=60)
    assert not reply.results[0].correct and reply.results[0].reason.startswith("timeout")
    assert reply.results[1].correct
    again = scoring.Score(scoring_pb2.ScoreRequest(items=[_item(MATH, r"\boxed{2\pi}", r"2\pi")]), timeout=30)
    assert again.results[0].correct


def test_one_megabyte_response_is_graded(scoring) -> None:
    response = "Thinking out loud. " * 55_000 + r"Answer: $\boxed{\sqrt{8}}$"
    reply = scoring.Score(scoring_pb2.ScoreRequest(items=[_item(MATH, response, r"2\sqrt{2}")]), timeout=60)
    assert reply.results[0].correct


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (scoring_pb2.ScoreRequest(), "items"),
        (scoring_pb2.ScoreRequest(items=[_item(MATH, r"\boxed{1}", "1")] * 401), "items"),
        (scoring_pb2.ScoreRequest(items=[_item(0, r"\boxed{1}", "1")]), "items[0].task_type"),
        (scoring_pb2.ScoreRequest(items=[_item(MATH, "x" * 1_600_000, "1")]), "items[0].response"),
        (scoring_pb2.ScoreRequest(items=[_item(common_pb2.TASK_TYPE_CODE, "```python\n```", "")]), "items[0].tests"),
    ],
    ids=["empty", "over-max", "unknown-type", "oversized", "code-without-tests"],
)
def test_bad_request_is_invalid_argument_naming_the_field(scoring, request_, field: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        scoring.Score(request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:")


def test_item_without_reference_still_reports_the_extracted_answer(scoring) -> None:
    items = [_item(MATH, r"so $\boxed{\frac{3}{4}}$", ""), _item(CHOICE, "Answer: B", "")]
    reply = scoring.Score(scoring_pb2.ScoreRequest(items=items), timeout=30)
    assert [(r.correct, r.extracted) for r in reply.results] == [(False, r"\frac{3}{4}"), (False, "B")]
    assert all(r.reason.startswith("no reference") for r in reply.results)


def test_code_item_with_sandbox_down_is_unavailable_naming_the_address(start_service) -> None:
    dead = f"127.0.0.1:{free_port()}"
    addr = start_service("scoring", {"START_SANDBOX_ADDR": dead, "START_SCORING_WORKERS": "1"})
    test = common_pb2.TestCase(input="", expected_output="1\n")
    item = scoring_pb2.ScoreItem(task_type=common_pb2.TASK_TYPE_CODE, response="```python\nprint(1)\n```", tests=[test])
    with channel(addr) as ch, pytest.raises(grpc.RpcError) as err:
        scoring_pb2_grpc.ScoringServiceStub(ch).Score(scoring_pb2.ScoreRequest(items=[item]), timeout=60)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert dead in err.value.details()


def test_detect_repetition_flags_a_loop(scoring) -> None:
    looping = "\n\n".join(["Let me reconsider the problem from the start, carefully."] * 20)
    reply = scoring.DetectRepetition(scoring_pb2.RepetitionRequest(text=looping), timeout=30)
    assert reply.repetitive and reply.score >= 1.0 and reply.reason
    healthy = scoring.DetectRepetition(scoring_pb2.RepetitionRequest(text="37 * 43 = 1591, checked twice."), timeout=30)
    assert not healthy.repetitive
