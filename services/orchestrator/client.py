"""Poke the orchestrator by hand: submit one episode and follow it step by step.

    python -m services.orchestrator.client --addr 127.0.0.1:50050 "What is 123 * 456?" --reference 56088
    python -m services.orchestrator.client --addr 127.0.0.1:50050 --get EPISODE_ID
"""

from __future__ import annotations

import argparse

from google.protobuf import json_format

from services.common.channels import channel
from services.common.episode import snapshots_of
from services.common.settings import DEFAULT_PORTS
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default="")
    parser.add_argument("--addr", default=f"127.0.0.1:{DEFAULT_PORTS['orchestrator']}")
    parser.add_argument("--reference", default="")
    parser.add_argument("--no-hints", action="store_true")
    parser.add_argument("--think-hints", type=int, default=1)
    parser.add_argument("--get", default="", help="Print an episode by id instead of submitting.")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    with channel(args.addr) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        if args.get:
            episode = stub.GetEpisode(opb.GetEpisodeRequest(episode_id=args.get), timeout=30)
            print(json_format.MessageToJson(episode, preserving_proto_field_name=True))
            return
        options = pb.EpisodeOptions(
            hints_enabled=not args.no_hints,
            reflection_hint_probability=0.0 if args.no_hints else 1.0,
            max_think_hints=0 if args.no_hints else args.think_hints,
        )
        problem = pb.Problem(question=args.question, reference=args.reference, task_type=pb.TASK_TYPE_MATH)
        episode_id = stub.SubmitEpisode(opb.SubmitEpisodeRequest(problem=problem, options=options)).episode_id
        print(f"episode {episode_id}")
        request = opb.WatchEpisodeRequest(episode_id=episode_id, timeout_s=args.timeout)
        # The stream carries what each step changed; snapshots_of rebuilds the whole episode.
        for snapshot in snapshots_of(stub.WatchEpisode(request, timeout=args.timeout + 30)):
            last = snapshot.spans[-1] if snapshot.spans else None
            kind = pb.SpanKind.Name(last.kind).removeprefix("SPAN_KIND_") if last else "-"
            print(f"step {snapshot.steps}: {pb.EpisodeStatus.Name(snapshot.status)} last span {kind}")
        print("".join(span.text for span in snapshot.spans))
        print(f"score: {json_format.MessageToDict(snapshot.score)}  error: {snapshot.error or '-'}")


if __name__ == "__main__":
    main()
