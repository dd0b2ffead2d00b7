"""The episode: the one state type of a hint-infer run (its text's strings are services.common.text_contract's).

An episode is the `start.v1.Episode` message: the problem, the options it runs with, and
its text as typed spans (prompt / model / hint / tool code / tool output). It is stored
as bytes after every step so that any worker can take the next one, and exported as JSON
for datasets and training, where span kinds become loss masks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence

from google.protobuf import json_format

from services.common.text_contract import END_THINK
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2, hints_pb2
from start.v1 import orchestrator_pb2 as opb

# The end of an episode's text that the hint policy sees (EpisodeView.tail).
MAX_TAIL_CHARS = 2000
# Spans whose `</think>` ends the thinking: what the model wrote, and what the policy
# appends in its stead (the `</think>` it held back). Not a hint's or a tool output's text.
_THINKING_KINDS = (pb.SPAN_KIND_MODEL, pb.SPAN_KIND_TOOL_CODE)


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

    Every text enters an episode here, so here alone is decided when its thinking is done.
    """
    if not text:
        return
    if kind in _THINKING_KINDS and END_THINK in text:
        episode.thinking_done = True
    last = episode.spans[-1] if episode.spans else None
    mergeable = last is not None and last.kind == kind and not hint_id and not last.hint_id
    if mergeable and bool(last.token_ids) == bool(token_ids):
        last.text += text
        last.token_ids.extend(token_ids)
        return
    episode.spans.add(kind=kind, text=text, hint_id=hint_id, hint_category=hint_category, token_ids=token_ids)


def context_pieces(episode: pb.Episode) -> list[generation_pb2.ContextPiece]:
    """The episode's whole text as the pieces the model continues from, for one Generate.

    Spans with ids (what the model wrote) keep them; each run of spans without ids (the
    prompt, hints, tool outputs, fences, a stop string's cut tail) is one text piece, which
    the generation service tokenises on its own, the way training tokenises it, without
    special tokens: the prompt is a rendered chat template that carries its own.
    """
    pieces: list[generation_pb2.ContextPiece] = []
    for part in _context_parts(episode):
        if isinstance(part, str):
            pieces.append(generation_pb2.ContextPiece(text=part))
        else:
            pieces.append(generation_pb2.ContextPiece(token_ids=generation_pb2.TokenIds(token_ids=part)))
    return pieces


def _context_parts(episode: pb.Episode) -> list[list[int] | str]:
    """Model ids as they are; runs of appended text joined."""
    parts: list[list[int] | str] = []
    for span in episode.spans:
        if span.token_ids:
            parts.append(list(span.token_ids))
        elif parts and isinstance(parts[-1], str):
            parts[-1] += span.text
        elif span.text:
            parts.append(span.text)
    return parts


def context_token_ids(episode: pb.Episode, tokenize_pieces: Callable[[list[str]], list[list[int]]]) -> list[int]:
    """The ids `context_pieces` stands for, with `tokenize_pieces` tokenising the text
    pieces all in one call (as the generation service does; benchmarks use it)."""
    parts = _context_parts(episode)
    runs = [part for part in parts if isinstance(part, str)]
    tokenised = iter(tokenize_pieces(runs) if runs else [])
    ids: list[int] = []
    for part in parts:
        ids.extend(next(tokenised) if isinstance(part, str) else part)
    return ids


def view_of(episode: pb.Episode) -> hints_pb2.EpisodeView:
    """What the hint policy reads of an episode: its options, counters and recent text."""
    return hints_pb2.EpisodeView(
        id=episode.id,
        options=episode.options,
        task_type=episode.problem.task_type,
        steps=episode.steps,
        tool_calls=episode.tool_calls,
        think_hints=episode.think_hints,
        reflection_hints=episode.reflection_hints,
        generated_tokens=episode.generated_tokens,
        thinking_done=episode.thinking_done,
        tail=_tail(episode, MAX_TAIL_CHARS),
    )


def _tail(episode: pb.Episode, chars: int) -> str:
    """The last `chars` characters of the text, reading only the spans it needs."""
    pieces: list[str] = []
    left = chars
    for span in reversed(episode.spans):
        if left <= 0:
            break
        pieces.append(span.text[-left:])
        left -= len(pieces[-1])
    return "".join(reversed(pieces))


def to_json(episode: pb.Episode) -> dict:
    return json_format.MessageToDict(episode, preserving_proto_field_name=True)


def from_json(data: dict) -> pb.Episode:
    return json_format.ParseDict(data, pb.Episode(), ignore_unknown_fields=True)


# -- watching an episode: what changed between two snapshots -----------------------------
# WatchEpisode sends the whole episode once, then only what each step changed
# (`start.v1.EpisodeChange`, documented in orchestrator.proto). The server makes the
# changes and every client rebuilds the snapshots with these three functions, so the two
# sides cannot disagree on what a change means.

# Fixed when the episode is submitted, and as large as a code problem's tests: sent once.
_SENT_ONCE = ("problem", "options")


def episode_change(before: pb.Episode | None, after: pb.Episode) -> opb.EpisodeChange:
    """What turns `before` (the snapshot the client has; None: it has none) into `after`.

    Every field of `after`, but of its spans only those from the first one that differs
    from `before`'s: a step only appends (merging into the last span when the kind
    matches), so that is the previously last span and the new ones; and its problem and
    options only when they differ from `before`'s. So the message's size does not grow
    with the episode's earlier text, nor carry the problem's tests at every step.
    """
    change = opb.EpisodeChange(episode=after)
    if before is None:
        return change
    spans_from, common = 0, min(len(before.spans), len(after.spans))
    while spans_from < common and before.spans[spans_from] == after.spans[spans_from]:
        spans_from += 1
    change.spans_from = spans_from
    del change.episode.spans[:spans_from]
    for name in _SENT_ONCE:
        if getattr(before, name) == getattr(after, name):
            change.episode.ClearField(name)
    return change


def apply_change(before: pb.Episode | None, change: opb.EpisodeChange) -> pb.Episode:
    """The snapshot `change` describes, given the one before it (None for a stream's first).

    Returns a new message and leaves `before` as it is, so a caller may keep every snapshot.
    """
    have = len(before.spans) if before is not None else 0
    if change.spans_from > have:
        raise ValueError(
            f"change starts at span {change.spans_from} but the snapshot before it has {have} spans: "
            "apply a stream's changes in order, from its first message"
        )
    after = pb.Episode()
    after.CopyFrom(change.episode)
    del after.spans[:]
    if change.spans_from:
        after.spans.extend(before.spans[: change.spans_from])
    after.spans.extend(change.episode.spans)
    for name in _SENT_ONCE:
        if before is not None and not change.episode.HasField(name):
            getattr(after, name).CopyFrom(getattr(before, name))
    return after


def snapshots_of(changes: Iterable[opb.EpisodeChange]) -> Iterator[pb.Episode]:
    """The whole episode after each message of a WatchEpisode stream, in order."""
    snapshot = None
    for change in changes:
        snapshot = apply_change(snapshot, change)
        yield snapshot
