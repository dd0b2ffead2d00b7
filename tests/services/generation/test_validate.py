"""Edge validation of generation requests: proto3 defaults read as documented, bad fields
named. Pure functions, no engine: these run in the quick suite too.
"""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.generation import validate
from start.v1 import common_pb2, generation_pb2

LIMITS = validate.Limits(
    max_model_len=2048,
    vocab_size=1000,
    max_chars_per_token=10,
    max_n=8,
    max_stop_strings=4,
    max_stop_chars=16,
    max_logprobs=5,
)


def test_unset_sampling_fields_mean_greedy_one_sample_up_to_the_room_left() -> None:
    sampling = validate.sampling(common_pb2.SamplingParams(), LIMITS, prompt_tokens=48)
    assert sampling.temperature == 0 and sampling.top_p == 1.0 and sampling.n == 1
    assert sampling.max_tokens == 2048 - 48
    assert sampling.seed is None and sampling.logprobs == 0


def test_max_tokens_past_the_context_is_capped_at_the_room_left() -> None:
    params = common_pb2.SamplingParams(max_tokens=2000, seed=0)
    sampling = validate.sampling(params, LIMITS, prompt_tokens=1000)
    assert sampling.max_tokens == 1048
    assert sampling.seed == 0  # an explicit seed of 0 is a seed, not "unset"


def test_prompt_is_text_ids_or_context_pieces_exactly_one() -> None:
    assert validate.prompt(generation_pb2.GenerateRequest(prompt="Wait,"), LIMITS) == (["Wait,"], True)
    assert validate.prompt(generation_pb2.GenerateRequest(prompt_token_ids=[1, 2]), LIMITS) == ([[1, 2]], False)
    context = [
        generation_pb2.ContextPiece(text="<|im_start|>user"),
        generation_pb2.ContextPiece(token_ids=generation_pb2.TokenIds(token_ids=[5, 6])),
    ]
    pieces = validate.prompt(generation_pb2.GenerateRequest(context=context), LIMITS)
    assert pieces == (["<|im_start|>user", [5, 6]], False), "context text gets no special tokens"
    for bad in (generation_pb2.GenerateRequest(), generation_pb2.GenerateRequest(prompt="x", prompt_token_ids=[1])):
        with pytest.raises(InvalidArgument) as err:
            validate.prompt(bad, LIMITS)
        assert err.value.field.startswith("prompt")
    with pytest.raises(InvalidArgument, match="not prompt and context"):
        validate.prompt(generation_pb2.GenerateRequest(prompt="x", context=context), LIMITS)


@pytest.mark.parametrize(
    ("piece", "field"),
    [
        (generation_pb2.ContextPiece(), "context[0]"),
        (generation_pb2.ContextPiece(text=""), "context[0].text"),
        (generation_pb2.ContextPiece(token_ids=generation_pb2.TokenIds()), "context[0].token_ids"),
        (generation_pb2.ContextPiece(token_ids=generation_pb2.TokenIds(token_ids=[10**6])), "context[0].token_ids"),
    ],
)
def test_a_bad_context_piece_is_named(piece: generation_pb2.ContextPiece, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate.prompt(generation_pb2.GenerateRequest(context=[piece]), LIMITS)
    assert err.value.field == field


def test_text_far_beyond_the_context_is_refused_before_tokenising() -> None:
    with pytest.raises(InvalidArgument, match="2048 tokens"):
        validate.prompt(generation_pb2.GenerateRequest(prompt="x" * (2048 * 10 + 1)), LIMITS)


def test_prompt_filling_the_whole_context_is_refused_naming_the_limit() -> None:
    validate.prompt_length(2047, LIMITS)
    with pytest.raises(InvalidArgument, match="limit of 2048 tokens"):
        validate.prompt_length(2048, LIMITS)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (common_pb2.SamplingParams(temperature=-1), "sampling.temperature"),
        (common_pb2.SamplingParams(temperature=float("nan")), "sampling.temperature"),
        (common_pb2.SamplingParams(top_p=-0.1), "sampling.top_p"),
        (common_pb2.SamplingParams(top_p=1.01), "sampling.top_p"),
        (common_pb2.SamplingParams(n=9), "sampling.n"),
        (common_pb2.SamplingParams(n=-1), "sampling.n"),
        (common_pb2.SamplingParams(max_tokens=-5), "sampling.max_tokens"),
        (common_pb2.SamplingParams(max_tokens=4096), "sampling.max_tokens"),
        (common_pb2.SamplingParams(stop=["a", "b", "c", "d", "e"]), "sampling.stop"),
        (common_pb2.SamplingParams(stop=["ok", "x" * 17]), "sampling.stop[1]"),
        (common_pb2.SamplingParams(logprobs=6), "sampling.logprobs"),
    ],
)
def test_bad_sampling_field_is_named(params: common_pb2.SamplingParams, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate.sampling(params, LIMITS, prompt_tokens=10)
    assert err.value.field == field


def test_chat_needs_messages_with_roles() -> None:
    with pytest.raises(InvalidArgument, match="messages"):
        validate.chat(generation_pb2.RenderChatRequest())
    with pytest.raises(InvalidArgument) as err:
        validate.chat(generation_pb2.RenderChatRequest(messages=[generation_pb2.ChatMessage(content="hi")]))
    assert err.value.field == "messages[0].role"
