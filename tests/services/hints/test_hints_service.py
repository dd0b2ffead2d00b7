"""The hints service as a real process over gRPC: the policy's answers and bad input."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from services.common.channels import channel
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2 as hpb
from start.v1 import hints_pb2_grpc


@pytest.fixture(scope="module")
def hints(start_service, tmp_path_factory: pytest.TempPathFactory) -> hints_pb2_grpc.HintServiceStub:
    user_dir: Path = tmp_path_factory.mktemp("hint-libraries")
    (user_dir / "finance-v2.yaml").write_text(
        "name: finance\nversion: '2.0'\ndomain: finance\nhints:\n"
        "  - id: npv\n    category: complex_calculation\n"
        "    text: \"Wait, let me discount the cash flows in Python.\\n```python\\n\"\n"
    )
    addr = start_service("hints", {"START_HINTS_LIBRARY_DIR": str(user_dir)})
    with channel(addr) as ch:
        yield hints_pb2_grpc.HintServiceStub(ch)


def view(**options: object) -> hpb.EpisodeView:
    return hpb.EpisodeView(
        id="e1",
        tail="What is 2**100 mod 7?",
        options=pb.EpisodeOptions(hints_enabled=True, reflection_hint_probability=1.0, max_think_hints=1,
                                  max_tool_calls=6, **options),
    )


def test_end_of_thinking_stop_gets_a_hint_from_the_service(hints: hints_pb2_grpc.HintServiceStub) -> None:
    request = hpb.NextActionRequest(view=view(), stop_reason=hpb.STOP_REASON_END_THINK)
    reply = hints.NextAction(request, timeout=10)
    assert reply.kind == pb.ACTION_KIND_GENERATE
    assert reply.append[0].kind == pb.SPAN_KIND_HINT and reply.append[0].hint_id.startswith("math@")
    assert list(reply.stop) == ["```"]


def test_list_hints_shows_the_built_in_and_the_users_libraries(hints: hints_pb2_grpc.HintServiceStub) -> None:
    math = hints.ListHints(hpb.ListHintsRequest(), timeout=10)
    assert math.library == "math" and len(math.hints) >= 8
    assert {h.category for h in math.hints} >= {"reflection", "logic_verification", "new_method", "complex_calculation"}
    assert all(h.text.endswith("```python\n") for h in math.hints)
    finance = hints.ListHints(hpb.ListHintsRequest(library="finance"), timeout=10)
    assert (finance.version, [h.id for h in finance.hints]) == ("2.0", ["npv"]), "the user's file replaces the example"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (hpb.NextActionRequest(stop_reason=hpb.STOP_REASON_START), "view"),
        (hpb.NextActionRequest(view=view(), stop_reason=hpb.STOP_REASON_UNSPECIFIED), "stop_reason"),
        (hpb.NextActionRequest(view=view(), stop_reason=99), "stop_reason"),
        (hpb.NextActionRequest(view=view(), stop_reason=hpb.STOP_REASON_REFLECTION), "stop_string"),
        (hpb.NextActionRequest(view=view(hint_library="astrology"), stop_reason=hpb.STOP_REASON_START),
         "hint_library"),
        (hpb.NextActionRequest(view=hpb.EpisodeView(), stop_reason=hpb.STOP_REASON_START), "view.id"),
        (hpb.NextActionRequest(view=hpb.EpisodeView(id="e2", tail="x" * 2001), stop_reason=hpb.STOP_REASON_START),
         "view.tail"),
        (hpb.NextActionRequest(view=hpb.EpisodeView(id="e2", tool_calls=-1), stop_reason=hpb.STOP_REASON_START),
         "view.tool_calls"),
    ],
)
def test_bad_requests_get_invalid_argument_naming_the_field(
    hints: hints_pb2_grpc.HintServiceStub, request_: hpb.NextActionRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        hints.NextAction(request_, timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in failure.value.details()


def test_unknown_library_in_list_hints_says_which_exist(hints: hints_pb2_grpc.HintServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        hints.ListHints(hpb.ListHintsRequest(library="astrology"), timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "math" in failure.value.details() and "code" in failure.value.details()
