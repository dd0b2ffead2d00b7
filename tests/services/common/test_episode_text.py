"""An episode's text as token ids: what the model wrote is sent back as it wrote it, and
what the platform appended is tokenised the way training tokenises it."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from services.common.episode import append_span, context_token_ids, text_of
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
