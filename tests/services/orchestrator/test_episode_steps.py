"""The step logic's pure parts: how a stop is classified, what the model sees of a tool run."""

from __future__ import annotations

import pytest

from services.orchestrator.peers import TransientError
from services.orchestrator.steps import classify_stop, tool_output
from start.v1 import generation_pb2 as gpb
from start.v1 import hints_pb2 as hpb
from start.v1 import sandbox_pb2 as spb

STOP, LENGTH = gpb.FINISH_REASON_STOP, gpb.FINISH_REASON_LENGTH


@pytest.mark.parametrize(
    ("finish", "stop", "in_code", "reason"),
    [
        (STOP, "Wait", False, hpb.STOP_REASON_REFLECTION),
        (STOP, "Alternatively", False, hpb.STOP_REASON_REFLECTION),
        (STOP, "</think>", False, hpb.STOP_REASON_END_THINK),
        (STOP, "```python", False, hpb.STOP_REASON_CODE_START),
        (STOP, "```", True, hpb.STOP_REASON_CODE_END),
        (STOP, "", False, hpb.STOP_REASON_EOS),
        (STOP, "", True, hpb.STOP_REASON_EOS),
        (LENGTH, "", True, hpb.STOP_REASON_LENGTH),
    ],
)
def test_each_stop_of_the_model_is_classified_for_the_policy(
    finish: int, stop: str, in_code: bool, reason: int
) -> None:
    assert classify_stop(gpb.Completion(finish_reason=finish, stop_string=stop), in_code) == reason


def test_an_aborted_generation_is_retried_not_classified() -> None:
    with pytest.raises(TransientError):
        classify_stop(gpb.Completion(finish_reason=gpb.FINISH_REASON_ABORT), False)


def test_a_failing_program_shows_the_model_its_output_and_the_end_of_its_traceback() -> None:
    stderr = "Traceback (most recent call last):\n" + "".join(f'  File "x", line {i}\n' for i in range(10))
    stderr += "ZeroDivisionError: division by zero\n"
    run = spb.ExecuteResponse(status=spb.EXECUTION_STATUS_RUNTIME_ERROR, stdout="partial", stderr=stderr)
    text = tool_output(run)
    assert text.startswith("partial\n")
    assert text.endswith("ZeroDivisionError: division by zero")
    assert len(text.splitlines()) == 1 + 5


def test_timeouts_and_memory_limits_are_named_for_the_model() -> None:
    assert "TimeoutError" in tool_output(spb.ExecuteResponse(status=spb.EXECUTION_STATUS_TIMEOUT))
    assert "MemoryError" in tool_output(spb.ExecuteResponse(status=spb.EXECUTION_STATUS_MEMORY_LIMIT))
    assert tool_output(spb.ExecuteResponse(status=spb.EXECUTION_STATUS_OK, stdout="42\n")) == "42\n"


def test_a_sandbox_failure_is_retried_rather_than_shown_to_the_model() -> None:
    with pytest.raises(TransientError):
        tool_output(spb.ExecuteResponse(status=spb.EXECUTION_STATUS_SANDBOX_ERROR, stderr="runsc: boom"))
