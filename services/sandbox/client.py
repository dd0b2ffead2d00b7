"""Poke a running sandbox service by hand.

    python -m services.sandbox.client --addr 127.0.0.1:50053 'print(2**100)'
    python -m services.sandbox.client --tests '[{"input": "2\\n", "expected_output": "4"}]' \
        'print(int(input())*2)'
"""

from __future__ import annotations

import argparse
import json

from google.protobuf.json_format import MessageToDict

from services.common.channels import channel
from start.v1 import common_pb2, sandbox_pb2, sandbox_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("code", help="Python source to run")
    parser.add_argument("--addr", default="127.0.0.1:50053")
    parser.add_argument("--stdin", default="")
    parser.add_argument("--timeout", type=float, default=0.0)
    parser.add_argument("--memory", type=int, default=0)
    parser.add_argument("--tests", help="JSON list of test cases: RunTests instead of Execute")
    args = parser.parse_args()
    with channel(args.addr) as ch:
        stub = sandbox_pb2_grpc.SandboxServiceStub(ch)
        if args.tests:
            cases = [common_pb2.TestCase(**case) for case in json.loads(args.tests)]
            reply = stub.RunTests(
                sandbox_pb2.RunTestsRequest(
                    code=args.code, tests=cases, timeout_s=args.timeout, memory_mb=args.memory
                )
            )
        else:
            reply = stub.Execute(
                sandbox_pb2.ExecuteRequest(
                    code=args.code, stdin=args.stdin, timeout_s=args.timeout, memory_mb=args.memory
                )
            )
    print(json.dumps(MessageToDict(reply), indent=2))


if __name__ == "__main__":
    main()
