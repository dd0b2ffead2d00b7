"""A small episode record built in code, as the orchestrator records one (spans of every kind)."""

from __future__ import annotations

from services.common.episode import append_span, new_episode, to_json
from start.v1 import common_pb2 as pb

PROMPT = "<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n<|im_start|>assistant\n<think>\n"
SPANS = [
    (pb.SPAN_KIND_PROMPT, PROMPT),
    (pb.SPAN_KIND_MODEL, "17 * 23 is about 400.\n"),
    (pb.SPAN_KIND_HINT, "Wait, I can use Python to check.```python\n"),
    (pb.SPAN_KIND_TOOL_CODE, "print(17 * 23)\n```"),
    (pb.SPAN_KIND_TOOL_OUTPUT, "\n```output\n391\n```\n"),
    (pb.SPAN_KIND_MODEL, "So it is 391.\n</think>\n\nThe answer is \\boxed{391}."),
]


def episode_record(spans: list[tuple[int, str]] = SPANS) -> dict:
    episode = new_episode(pb.Problem(id="p1", question="What is 17 * 23?", reference="391"), pb.EpisodeOptions())
    for kind, text in spans:
        append_span(episode, kind, text)
    episode.score.correct = True
    return to_json(episode)
