"""What WatchEpisode streams: the episode once, then what each step changed.

The server makes each message with `episode_change` and every client rebuilds the
snapshots with `apply_change`; these properties hold for any episode grown the way a
worker grows one (`append_span`, whose same-kind text merges into the last span), so a
client always holds exactly the episode the store holds, and a step's message costs the
same at span 3 as at span 300.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.episode import append_span, apply_change, episode_change, new_episode, snapshots_of
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb

KINDS = [pb.SPAN_KIND_MODEL, pb.SPAN_KIND_HINT, pb.SPAN_KIND_TOOL_CODE, pb.SPAN_KIND_TOOL_OUTPUT]
STATUSES = [pb.EPISODE_STATUS_RUNNING, pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED]

# One append_span call: kind, text, whether it is a hint (never merges), whether it has ids.
appends = st.tuples(st.sampled_from(KINDS), st.text(min_size=1, max_size=12), st.booleans(), st.booleans())
# One step: what it appends (often text of the last span's kind, which merges) and its status.
steps = st.tuples(st.lists(appends, min_size=0, max_size=4), st.sampled_from(STATUSES))


def first_snapshot(question: str = "What is 17 * 23?") -> pb.Episode:
    episode = new_episode(pb.Problem(question=question, reference="391"), pb.EpisodeOptions(), "e-1")
    append_span(episode, pb.SPAN_KIND_PROMPT, question)
    return episode


def grow(episode: pb.Episode, step: tuple[list, int]) -> pb.Episode:
    """The episode after one more step, as a worker saves it (a new message; episode stays)."""
    after = pb.Episode()
    after.CopyFrom(episode)
    spans, status = step
    for kind, text, is_hint, has_ids in spans:
        hint_id = "math@1" if is_hint else ""
        append_span(after, kind, text, hint_id=hint_id, token_ids=[ord(c) % 1000 for c in text] if has_ids else ())
    after.steps += 1
    after.status = status
    after.generated_tokens += sum(len(text) for _, text, _, _ in spans)
    return after


def episodes_grown_by(history: list[tuple[list, int]], question: str = "What is 17 * 23?") -> list[pb.Episode]:
    snapshots = [first_snapshot(question)]
    for step in history:
        snapshots.append(grow(snapshots[-1], step))
    return snapshots


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, min_size=1, max_size=12))
def test_applying_each_steps_change_rebuilds_every_snapshot_exactly(history: list) -> None:
    snapshots = episodes_grown_by(history)
    changes = [episode_change(None, snapshots[0])]
    changes += [episode_change(before, after) for before, after in zip(snapshots, snapshots[1:], strict=False)]
    assert changes[0].spans_from == 0 and changes[0].episode == snapshots[0]
    assert list(snapshots_of(changes)) == snapshots
    for before, change in zip(snapshots, changes[1:], strict=False):
        # Only the previously last span (grown by a merge) and the new ones are sent,
        # and the problem and options not again.
        assert change.spans_from >= len(before.spans) - 1
        assert not change.episode.HasField("problem") and not change.episode.HasField("options")


@settings(max_examples=200, deadline=None)
@given(st.lists(steps, min_size=1, max_size=12), st.data())
def test_a_stream_that_skips_steps_still_rebuilds_the_snapshots_it_sends(history: list, data: st.DataObject) -> None:
    # The server sends the newest snapshot it has heard of, so a missed event skips steps.
    snapshots = episodes_grown_by(history)
    sent = [snapshots[0]] + [s for s in snapshots[1:] if data.draw(st.booleans())]
    changes = [episode_change(None, sent[0])]
    changes += [episode_change(before, after) for before, after in zip(sent, sent[1:], strict=False)]
    assert list(snapshots_of(changes)) == sent


@settings(max_examples=200, deadline=None)
@given(st.lists(steps, max_size=6), st.lists(steps, max_size=6), st.sampled_from(["What is 17 * 23?", "2 + 2?"]))
def test_a_change_turns_any_episode_into_any_other(history_a: list, history_b: list, question: str) -> None:
    # Not only appends: whatever two snapshots differ by (even the problem), the change carries it.
    a, b = episodes_grown_by(history_a)[-1], episodes_grown_by(history_b, question)[-1]
    b.options.max_tool_calls = len(history_b)
    assert apply_change(a, episode_change(a, b)) == b


@settings(max_examples=200, deadline=None)
@given(
    st.lists(appends, min_size=1, max_size=200),
    st.tuples(st.sampled_from(KINDS), st.text(min_size=1, max_size=12)),
    steps,
)
def test_a_steps_change_does_not_grow_with_the_spans_before_it(earlier: list, last: tuple, step: tuple) -> None:
    # The same last span and the same step, after no earlier spans or after up to 200.
    short, long = first_snapshot(), first_snapshot()
    for kind, text, is_hint, has_ids in earlier:
        long.spans.add(kind=kind, text=text, hint_id="math@1" if is_hint else "", token_ids=[1] if has_ids else [])
    for episode in (short, long):
        episode.spans.add(kind=last[0], text=last[1])
    short_change = episode_change(short, grow(short, step))
    long_change = episode_change(long, grow(long, step))
    assert list(long_change.episode.spans) == list(short_change.episode.spans)
    # Only spans_from's varint differs (at most 2 more bytes up to 16383 spans).
    assert long_change.ByteSize() - short_change.ByteSize() <= 3


def test_a_change_applied_out_of_order_is_refused() -> None:
    snapshots = episodes_grown_by([([(pb.SPAN_KIND_HINT, "Wait,", True, False)], pb.EPISODE_STATUS_RUNNING)] * 3)
    change = episode_change(snapshots[2], snapshots[3])
    with pytest.raises(ValueError, match="in order"):
        apply_change(snapshots[0], change)
    with pytest.raises(ValueError, match="in order"):
        list(snapshots_of([change]))


def test_the_first_message_is_the_whole_episode() -> None:
    episode = first_snapshot()
    assert episode_change(None, episode) == opb.EpisodeChange(episode=episode, spans_from=0)
