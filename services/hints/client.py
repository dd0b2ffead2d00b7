"""Poke the hints service by hand.

    python -m services.hints.client --addr 127.0.0.1:50052 list [--library math]
    python -m services.hints.client --addr 127.0.0.1:50052 next END_THINK --think-hints 0 --k 2
"""

from __future__ import annotations

import argparse

from google.protobuf import json_format

from services.common.channels import channel
from services.common.settings import DEFAULT_PORTS
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2 as hpb
from start.v1 import hints_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", default=f"127.0.0.1:{DEFAULT_PORTS['hints']}")
    sub = parser.add_subparsers(dest="command", required=True)
    list_cmd = sub.add_parser("list", help="List a library's hints.")
    list_cmd.add_argument("--library", default="")
    next_cmd = sub.add_parser("next", help="Ask the policy what follows a stop of a one-line episode.")
    reasons = [name.removeprefix("STOP_REASON_") for name in hpb.StopReason.DESCRIPTOR.values_by_name]
    next_cmd.add_argument("stop_reason", choices=reasons)
    next_cmd.add_argument("--stop-string", default="")
    next_cmd.add_argument("--probability", type=float, default=1.0)
    next_cmd.add_argument("--k", type=int, default=2, help="max think hints")
    next_cmd.add_argument("--think-hints", type=int, default=0)
    next_cmd.add_argument("--library", default="")
    args = parser.parse_args()

    with channel(args.addr) as ch:
        stub = hints_pb2_grpc.HintServiceStub(ch)
        if args.command == "list":
            reply = stub.ListHints(hpb.ListHintsRequest(library=args.library), timeout=10)
        else:
            view = hpb.EpisodeView(
                id="by-hand",
                tail="What is 123 * 456?",
                think_hints=args.think_hints,
                options=pb.EpisodeOptions(
                    hints_enabled=True,
                    reflection_hint_probability=args.probability,
                    max_think_hints=args.k,
                    max_tool_calls=6,
                    hint_library=args.library,
                ),
            )
            request = hpb.NextActionRequest(
                view=view, stop_reason=hpb.StopReason.Value(f"STOP_REASON_{args.stop_reason}"),
                stop_string=args.stop_string,
            )
            reply = stub.NextAction(request, timeout=10)
    print(json_format.MessageToJson(reply, preserving_proto_field_name=True))


if __name__ == "__main__":
    main()
