"""Poke a running scoring service by hand.

    python -m services.scoring.client math '\\boxed{\\frac12}' 0.5 [--addr 127.0.0.1:50054]
    python -m services.scoring.client multiple_choice 'Answer: C' C
    python -m services.scoring.client repetition "$(cat trace.txt)"
"""

from __future__ import annotations

import argparse

from services.common.channels import channel
from services.common.settings import PeerAddresses
from start.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc

TASK_TYPES = {"math": common_pb2.TASK_TYPE_MATH, "multiple_choice": common_pb2.TASK_TYPE_MULTIPLE_CHOICE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=[*TASK_TYPES, "repetition"])
    parser.add_argument("response")
    parser.add_argument("reference", nargs="?", default="")
    parser.add_argument("--addr", default=PeerAddresses().scoring_addr, help="START_SCORING_ADDR")
    args = parser.parse_args()
    with channel(args.addr) as ch:
        stub = scoring_pb2_grpc.ScoringServiceStub(ch)
        if args.kind == "repetition":
            print(stub.DetectRepetition(scoring_pb2.RepetitionRequest(text=args.response), timeout=30))
            return
        item = scoring_pb2.ScoreItem(task_type=TASK_TYPES[args.kind], response=args.response, reference=args.reference)
        print(stub.Score(scoring_pb2.ScoreRequest(items=[item]), timeout=30))


if __name__ == "__main__":
    main()
