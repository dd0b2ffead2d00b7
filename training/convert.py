"""Episodes (as the orchestrator records them) -> training samples.

An episode record is the `start.v1.Episode` message as JSON (`services.common.episode.
to_json`): its spans are the exact text the model saw and wrote, typed by who wrote it.
A sample keeps that text span for span: the PROMPT spans (the chat-rendered prompt)
become one leading `prompt` span, so the sample trains on exactly the tokens of the
episode; the problem's question is kept as the user message for people reading the data.
Which episodes to keep (Hint-RFT, RFT) is the dataset builder's choice, not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from services.common.episode import from_json
from start.v1 import common_pb2 as pb
from training.data import Message, Sample, Span

SPAN_TYPES = {
    pb.SPAN_KIND_PROMPT: "prompt",
    pb.SPAN_KIND_MODEL: "model",
    pb.SPAN_KIND_HINT: "hint",
    pb.SPAN_KIND_TOOL_CODE: "tool_code",
    pb.SPAN_KIND_TOOL_OUTPUT: "tool_output",
}


def episode_to_sample(record: dict) -> Sample:
    """One sample from one episode record; raises ValueError on an episode with nothing to learn."""
    return sample_of_episode(from_json(record))


def sample_of_episode(episode: pb.Episode) -> Sample:
    """One sample from one episode; raises ValueError on an episode with nothing to learn."""
    spans: list[Span] = []
    for span in episode.spans:
        if span.kind not in SPAN_TYPES:
            raise ValueError(f"episode {episode.id}: span of unknown kind {span.kind}")
        kind = SPAN_TYPES[span.kind]
        if spans and kind == "prompt" == spans[-1].type:
            spans[-1] = Span(type="prompt", text=spans[-1].text + span.text)
        else:
            spans.append(Span(type=kind, text=span.text, hint_id=span.hint_id or None))
    if not any(s.type in ("model", "tool_code") for s in spans):
        raise ValueError(f"episode {episode.id}: no model text to train on")
    messages = [Message(role="user", content=episode.problem.question)] if episode.problem.question else []
    meta = {
        "episode_id": episode.id,
        "problem_id": episode.problem.id,
        "correct": episode.score.correct,
        "tool_calls": episode.tool_calls,
    }
    return Sample(id=episode.id, messages=[*messages, Message(role="assistant", content=spans)], meta=meta)


def read_episode_records(path: str | Path) -> Iterator[dict]:
    with open(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def convert_records(records: Iterable[dict]) -> tuple[list[Sample], int]:
    """Samples of the records that have model text, and how many were skipped."""
    samples, skipped = [], 0
    for record in records:
        try:
            samples.append(episode_to_sample(record))
        except ValueError:
            skipped += 1
    return samples, skipped
