"""An episode's text as token ids: what the model wrote is sent back as it wrote it, and
what the platform appended is tokenised the way training tokenises it."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from services.common.episode import append_span, context_pieces, context_token_ids, text_of, view_of
from services.common.text_contract import END_THINK
from start.v1 import common_pb2 as pb
from startctl.stack import MICRO_MODEL


@pytest.fixture(scope="module")
def tokenize():
    tokenizer = AutoTokenizer.from_pretrained(MICRO_MODEL)
    return lambda text: tokenizer.encode(text, add_special_tokens=False)


class PiecesTokenizer:
    """Tokenises pieces as the generation service does, and remembers each call."""

    def __init__(self, tokenize) -> None:  # noqa: ANN001
        self.tokenize = tokenize
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[list[int]]:
        self.calls.append(list(texts))
        return [self.tokenize(text) for text in texts]


def test_model_ids_are_kept_and_each_run_of_appended_text_is_tokenised_whole(tokenize) -> None:
    episode = pb.Episode()
    append_span(episode, pb.SPAN_KIND_PROMPT, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n")
    # Ids the tokenizer would not produce for this text: they must still be sent as they are.
    written = [t for ch in "I think" for t in tokenize(ch)]
    append_span(episode, pb.SPAN_KIND_MODEL, "I think", token_ids=written)
    append_span(episode, pb.SPAN_KIND_MODEL, " ")  # a stop string's cut tail
    append_span(episode, pb.SPAN_KIND_HINT, "Wait, let me use Python.\n```python\n", hint_id="math@1/x")

    pieces = PiecesTokenizer(tokenize)
    ids = context_token_ids(episode, pieces)

    prompt = tokenize("<|im_start|>user\nWhat is 2+2?<|im_end|>\n")
    assert ids == prompt + written + tokenize(" Wait, let me use Python.\n```python\n")
    assert written != tokenize("I think")
    # Every run of appended text in one call, in order: one round trip per step.
    assert pieces.calls == [["<|im_start|>user\nWhat is 2+2?<|im_end|>\n", " Wait, let me use Python.\n```python\n"]]


def test_an_episode_of_model_ids_only_needs_no_tokenising(tokenize) -> None:
    episode = pb.Episode()
    append_span(episode, pb.SPAN_KIND_MODEL, "ab", token_ids=[1, 2])
    pieces = PiecesTokenizer(tokenize)
    assert context_token_ids(episode, pieces) == [1, 2]
    assert pieces.calls == []


def test_text_with_ids_and_text_without_never_share_a_span(tokenize) -> None:
    episode = pb.Episode()
    append_span(episode, pb.SPAN_KIND_MODEL, "ab", token_ids=[1, 2])
    append_span(episode, pb.SPAN_KIND_MODEL, "cd", token_ids=[3])
    append_span(episode, pb.SPAN_KIND_MODEL, "e")
    append_span(episode, pb.SPAN_KIND_MODEL, "f")
    assert [(s.text, list(s.token_ids)) for s in episode.spans] == [("abcd", [1, 2, 3]), ("ef", [])]
    assert text_of(episode) == "abcdef"


def test_context_pieces_are_the_same_parts_as_the_ids(tokenize) -> None:
    episode = pb.Episode()
    append_span(episode, pb.SPAN_KIND_PROMPT, "<|im_start|>user\nQ<|im_end|>\n")
    append_span(episode, pb.SPAN_KIND_MODEL, "ab", token_ids=[1, 2])
    append_span(episode, pb.SPAN_KIND_MODEL, " ")
    append_span(episode, pb.SPAN_KIND_HINT, "Wait", hint_id="math@1/x")
    pieces = context_pieces(episode)
    assert [p.WhichOneof("piece") for p in pieces] == ["text", "token_ids", "text"]
    assert (pieces[0].text, list(pieces[1].token_ids.token_ids), pieces[2].text) == (
        "<|im_start|>user\nQ<|im_end|>\n", [1, 2], " Wait")


@pytest.mark.parametrize(
    ("kind", "done"),
    [(pb.SPAN_KIND_MODEL, True), (pb.SPAN_KIND_TOOL_CODE, True), (pb.SPAN_KIND_HINT, False),
     (pb.SPAN_KIND_TOOL_OUTPUT, False), (pb.SPAN_KIND_PROMPT, False)],
)
def test_thinking_is_done_when_the_model_writes_its_end_not_a_hint_or_a_tool(kind: int, done: bool) -> None:
    episode = pb.Episode()
    append_span(episode, kind, f"x {END_THINK} y", hint_id="h" if kind == pb.SPAN_KIND_HINT else "")
    assert episode.thinking_done is done


def test_the_policys_view_carries_counters_and_only_the_end_of_the_text() -> None:
    episode = pb.Episode(id="e", steps=3, tool_calls=2, think_hints=1, generated_tokens=77)
    episode.problem.task_type = pb.TASK_TYPE_CODE
    append_span(episode, pb.SPAN_KIND_PROMPT, "p" * 5000)
    append_span(episode, pb.SPAN_KIND_MODEL, "m" * 1500, token_ids=[1])
    view = view_of(episode)
    assert (view.id, view.steps, view.tool_calls, view.think_hints, view.generated_tokens) == ("e", 3, 2, 1, 77)
    assert view.task_type == pb.TASK_TYPE_CODE
    assert view.tail == "p" * 500 + "m" * 1500
