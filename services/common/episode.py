"""The episode: the one state type of a hint-infer run, and the text conventions around it.

An episode is the `start.v1.Episode` message: the problem, the options it runs with, and
its text as typed spans (prompt / model / hint / tool code / tool output). It is stored
as bytes after every step so that any worker can take the next one, and exported as JSON
for datasets and training, where span kinds become loss masks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from google.protobuf import json_format

from start.v1 import common_pb2 as pb

PYTHON_FENCE = "```python"
CLOSING_FENCE = "```"
END_THINK = "</think>"
TRUNCATION_MARKER = "\n... [output truncated]"


def new_episode(problem: pb.Problem, options: pb.EpisodeOptions, episode_id: str = "") -> pb.Episode:
    return pb.Episode(
        id=episode_id or uuid.uuid4().hex,
        problem=problem,
        options=options,
        status=pb.EPISODE_STATUS_PENDING,
        created_unix=time.time(),
    )


def text_of(episode: pb.Episode) -> str:
    return "".join(span.text for span in episode.spans)


def append_span(
    episode: pb.Episode,
    kind: int,
    text: str,
    hint_id: str = "",
    hint_category: str = "",
    token_ids: Sequence[int] = (),
) -> None:
    """Append text as a span; consecutive text of one kind merges into one span.

    `token_ids`, when given, are exactly the ids of `text` (what the engine generated).
    Text with ids merges only into a span with ids, and text without into one without, so
    that a span's ids, when it has them, always encode its whole text.
    """
    if not text:
        return
    last = episode.spans[-1] if episode.spans else None
    mergeable = last is not None and last.kind == kind and not hint_id and not last.hint_id
    if mergeable and bool(last.token_ids) == bool(token_ids):
        last.text += text
        last.token_ids.extend(token_ids)
        return
    episode.spans.add(kind=kind, text=text, hint_id=hint_id, hint_category=hint_category, token_ids=token_ids)


def context_token_ids(episode: pb.Episode, tokenize_pieces: Callable[[list[str]], list[list[int]]]) -> list[int]:
    """The episode's whole text as the ids the model continues from.

    Spans with ids (what the model wrote) keep them; each run of spans without ids (the
    prompt, hints, tool outputs, fences, a stop string's cut tail) is tokenised as one
    text, the way training tokenises it, all runs in one call of `tokenize_pieces`. It
    must add no special tokens: the prompt is a rendered chat template that carries its own.
    """
    parts: list[list[int] | str] = []  # model ids as they are; runs of appended text
    for span in episode.spans:
        if span.token_ids:
            parts.append(list(span.token_ids))
        elif parts and isinstance(parts[-1], str):
            parts[-1] += span.text
        elif span.text:
            parts.append(span.text)
    runs = [part for part in parts if isinstance(part, str)]
    tokenised = iter(tokenize_pieces(runs) if runs else [])
    ids: list[int] = []
    for part in parts:
        ids.extend(next(tokenised) if isinstance(part, str) else part)
    return ids


def open_code_block(text: str) -> str | None:
    """The code of a python block opened at the end of text and not yet closed, else None."""
    start = text.rfind(PYTHON_FENCE)
    if start < 0:
        return None
    body = text[start + len(PYTHON_FENCE) :]
    if CLOSING_FENCE in body:
        return None
    return body


def last_closed_code_block(text: str) -> str | None:
    """The code of the last complete python block in text, else None."""
    start = text.rfind(PYTHON_FENCE)
    if start < 0:
        return None
    body = text[start + len(PYTHON_FENCE) :]
    end = body.find(CLOSING_FENCE)
    return None if end < 0 else body[:end].strip("\n")


def truncate_output(output: str, max_chars: int) -> str:
    if max_chars <= 0 or len(output) <= max_chars:
        return output
    return output[:max_chars] + TRUNCATION_MARKER


def format_tool_output(output: str) -> str:
    """The fenced block the platform appends after a tool call (the model was trained on it)."""
    body = output if output.endswith("\n") or not output else output + "\n"
    return f"\n```output\n{body}```\n"


def to_json(episode: pb.Episode) -> dict:
    return json_format.MessageToDict(episode, preserving_proto_field_name=True)


def from_json(data: dict) -> pb.Episode:
    return json_format.ParseDict(data, pb.Episode(), ignore_unknown_fields=True)
