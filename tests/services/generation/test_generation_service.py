"""The generation service as its callers use it: a real server process over real vLLM (CPU)
with the micro model, called over gRPC on loopback. One engine is shared by the session
(`generation_addr`), so every test here is slow and keeps its calls short.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import channel
from start.v1 import common_pb2, generation_pb2, generation_pb2_grpc

pytestmark = pytest.mark.slow

MAX_MODEL_LEN = 2048  # what the generation_addr fixture starts the engine with
PROMPT = "Compute 37 * 43. Let me think step by step."


@pytest.fixture(scope="module")
def chan(generation_addr: str) -> Iterator[grpc.Channel]:
    with channel(generation_addr) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(chan: grpc.Channel) -> generation_pb2_grpc.GenerationServiceStub:
    return generation_pb2_grpc.GenerationServiceStub(chan)


def request(prompt: str = PROMPT, **sampling: object) -> generation_pb2.GenerateRequest:
    sampling.setdefault("max_tokens", 24)
    return generation_pb2.GenerateRequest(prompt=prompt, sampling=common_pb2.SamplingParams(**sampling))


def unique_text(words: int) -> str:
    """Text no other call has sent, so the prefix cache cannot already hold it."""
    return " ".join(uuid.uuid4().hex[:6] for _ in range(words))


def test_health_is_serving_once_the_engine_has_loaded(chan: grpc.Channel, stub) -> None:
    reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    info = stub.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=5)
    assert info.model.endswith("start-micro")
    assert info.max_model_len == MAX_MODEL_LEN
    assert info.prefix_caching


def test_greedy_generation_is_deterministic_and_reports_usage(stub) -> None:
    first = stub.Generate(request(logprobs=1), timeout=120)
    second = stub.Generate(request(logprobs=1), timeout=120)
    (a,), (b,) = first.completions, second.completions
    assert a.token_ids == b.token_ids and a.text == b.text
    assert len(a.token_ids) > 0
    assert len(a.logprobs) == len(a.token_ids) and all(lp <= 0 for lp in a.logprobs)
    ids = stub.Tokenize(generation_pb2.TokenizeRequest(text=PROMPT), timeout=30).token_ids
    assert first.usage.prompt_tokens == len(ids)
    assert first.usage.completion_tokens == len(a.token_ids)


def test_stop_string_ends_the_completion_and_is_reported(stub) -> None:
    # Greedy is deterministic, so a piece of the free run's text is a stop string it will meet.
    run = dict(max_tokens=40, ignore_eos=True)
    free = stub.Generate(request(**run), timeout=120).completions[0].text
    assert len(free) >= 6, f"the model wrote too little to pick a stop string from: {free!r}"
    stop = free[len(free) // 2 : len(free) // 2 + 2]
    before = free[: free.find(stop)]

    excluded = stub.Generate(request(stop=[stop, "\x00never"], **run), timeout=120).completions[0]
    assert excluded.finish_reason == generation_pb2.FINISH_REASON_STOP
    assert excluded.stop_string == stop
    assert excluded.text == before

    included = stub.Generate(request(stop=[stop], include_stop_str_in_output=True, **run), timeout=120).completions[0]
    assert included.stop_string == stop
    assert included.text == before + stop


def test_completion_that_runs_out_of_tokens_ends_with_length(stub) -> None:
    done = stub.Generate(request(max_tokens=5, ignore_eos=True), timeout=120).completions[0]
    assert done.finish_reason == generation_pb2.FINISH_REASON_LENGTH
    assert len(done.token_ids) == 5
    assert done.stop_string == ""


def test_repeated_prefix_is_served_from_the_prefix_cache(stub) -> None:
    block = stub.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=5).kv_block_size
    prefix_len = 2 * block + block // 2  # two whole blocks and a partial one
    # Text no call has sent before (so nothing is cached yet), cut to an exact token count.
    tokenize = lambda text: list(stub.Tokenize(generation_pb2.TokenizeRequest(text=text), timeout=30).token_ids)  # noqa: E731
    prefix = tokenize(unique_text(words=prefix_len))[:prefix_len]
    assert len(prefix) == prefix_len

    def generate(ids: list[int]) -> generation_pb2.GenerateResponse:
        sampling = common_pb2.SamplingParams(max_tokens=4)
        return stub.Generate(generation_pb2.GenerateRequest(prompt_token_ids=ids, sampling=sampling), timeout=120)

    first = generate(prefix + tokenize(" Wait,"))
    second = generate(prefix + tokenize(" Alternatively,"))
    assert first.usage.cached_prompt_tokens == 0
    # The cache reuses whole blocks: the prefix's two full blocks come back, recomputed not.
    assert second.usage.cached_prompt_tokens == 2 * block
    assert second.usage.prompt_tokens == len(prefix) + len(tokenize(" Alternatively,"))


def test_reset_prefix_cache_makes_a_repeated_prompt_cold_again(stub) -> None:
    block = stub.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=5).kv_block_size
    text = unique_text(words=block)  # a few blocks of tokens
    assert stub.Generate(request(text, max_tokens=2), timeout=120).usage.cached_prompt_tokens == 0
    assert stub.Generate(request(text, max_tokens=2), timeout=120).usage.cached_prompt_tokens > 0
    assert stub.ResetPrefixCache(generation_pb2.ResetPrefixCacheRequest(), timeout=30).reset
    assert stub.Generate(request(text, max_tokens=2), timeout=120).usage.cached_prompt_tokens == 0


def test_stream_deltas_concatenate_to_the_final_text(stub) -> None:
    chunks = list(stub.GenerateStream(request(max_tokens=32), timeout=120))
    deltas = [c for c in chunks if not c.HasField("usage")]
    finals = [c.final for c in chunks if c.HasField("final")]
    assert len(deltas) > 1, "a 32-token completion should arrive in more than one piece"
    (final,) = finals
    assert "".join(c.delta_text for c in deltas) == final.text
    assert [t for c in deltas for t in c.delta_token_ids] == list(final.token_ids)
    assert chunks[-1].HasField("usage") and chunks[-1].usage.completion_tokens == len(final.token_ids)
    assert final.text == stub.Generate(request(max_tokens=32), timeout=120).completions[0].text


def test_n_samples_with_a_seed_are_reproducible(stub) -> None:
    sampled = dict(n=4, temperature=1.0, top_p=0.95, max_tokens=16, ignore_eos=True)
    one = stub.Generate(request(seed=7, **sampled), timeout=120)
    two = stub.Generate(request(seed=7, **sampled), timeout=120)
    other = stub.Generate(request(seed=8, **sampled), timeout=120)
    ids = lambda reply: [tuple(c.token_ids) for c in reply.completions]  # noqa: E731
    assert len(one.completions) == 4
    assert ids(one) == ids(two)
    assert len(set(ids(one))) > 1, "four samples at temperature 1 should not all be the same"
    assert ids(one) != ids(other)
    assert one.usage.completion_tokens == 4 * 16


def test_token_id_prompt_gives_the_same_completion_as_its_text(stub) -> None:
    ids = stub.Tokenize(generation_pb2.TokenizeRequest(text=PROMPT), timeout=30).token_ids
    by_text = stub.Generate(request(PROMPT), timeout=120)
    by_ids = stub.Generate(
        generation_pb2.GenerateRequest(prompt_token_ids=ids, sampling=common_pb2.SamplingParams(max_tokens=24)),
        timeout=120,
    )
    assert by_ids.completions[0].token_ids == by_text.completions[0].token_ids
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens == len(ids)


def test_context_as_pieces_is_the_same_request_as_its_ids(stub) -> None:
    """An episode's step in one call: ids of what the model wrote, text of what was appended."""
    head, hint = PROMPT, " Wait, let me check."
    head_ids = list(stub.Tokenize(generation_pb2.TokenizeRequest(pieces=[head]), timeout=30).pieces[0].token_ids)
    hint_ids = list(stub.Tokenize(generation_pb2.TokenizeRequest(pieces=[hint]), timeout=30).pieces[0].token_ids)
    sampling = common_pb2.SamplingParams(max_tokens=16)
    by_ids = stub.Generate(
        generation_pb2.GenerateRequest(prompt_token_ids=head_ids + hint_ids, sampling=sampling), timeout=120
    )
    context = [
        generation_pb2.ContextPiece(token_ids=generation_pb2.TokenIds(token_ids=head_ids)),
        generation_pb2.ContextPiece(text=hint),
    ]
    by_pieces = stub.Generate(generation_pb2.GenerateRequest(context=context, sampling=sampling), timeout=120)
    assert by_pieces.completions[0].token_ids == by_ids.completions[0].token_ids
    assert by_pieces.usage.prompt_tokens == len(head_ids) + len(hint_ids)


def test_fit_to_context_cuts_to_the_room_and_a_full_context_ends_with_length(stub) -> None:
    room_for_3 = [1] * (MAX_MODEL_LEN - 3)
    reply = stub.Generate(
        generation_pb2.GenerateRequest(
            prompt_token_ids=room_for_3, sampling=common_pb2.SamplingParams(max_tokens=500), fit_to_context=True
        ),
        timeout=120,
    )
    assert len(reply.completions[0].token_ids) <= 3
    # An episode's budget may be more than the whole context: cut too, not refused.
    budget = common_pb2.SamplingParams(max_tokens=4 * MAX_MODEL_LEN, ignore_eos=True)
    reply = stub.Generate(generation_pb2.GenerateRequest(prompt_token_ids=room_for_3, sampling=budget,
                                                         fit_to_context=True), timeout=120)
    assert len(reply.completions[0].token_ids) <= 3
    full = generation_pb2.GenerateRequest(prompt_token_ids=[1] * MAX_MODEL_LEN, fit_to_context=True)
    (completion,) = stub.Generate(full, timeout=30).completions
    assert completion.finish_reason == generation_pb2.FINISH_REASON_LENGTH and not completion.text
    chunks = list(stub.GenerateStream(full, timeout=30))
    assert chunks[0].final.finish_reason == generation_pb2.FINISH_REASON_LENGTH


def test_pieces_are_tokenised_each_on_its_own_in_one_call(stub) -> None:
    texts = [PROMPT, " Wait, let me check.", "\n```python\nprint(37 * 43)\n```\n"]
    reply = stub.Tokenize(generation_pb2.TokenizeRequest(pieces=texts), timeout=30)
    alone = [list(stub.Tokenize(generation_pb2.TokenizeRequest(text=t), timeout=30).token_ids) for t in texts]
    assert [list(piece.token_ids) for piece in reply.pieces] == alone
    assert not reply.token_ids


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (generation_pb2.TokenizeRequest(), "text"),
        (generation_pb2.TokenizeRequest(text="x", pieces=["y"]), "text"),
        (generation_pb2.TokenizeRequest(pieces=["x", ""]), "pieces[1]"),
        (generation_pb2.TokenizeRequest(pieces=["x" * 10_000_000]), "pieces"),
    ],
)
def test_bad_tokenize_request_is_invalid_argument_naming_the_field(stub, bad, field: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Tokenize(bad, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:")


def test_render_chat_uses_the_models_chat_template(stub) -> None:
    messages = [generation_pb2.ChatMessage(role="user", content="What is 12*34?")]
    plain = stub.RenderChat(generation_pb2.RenderChatRequest(messages=messages), timeout=30).text
    prompted = stub.RenderChat(
        generation_pb2.RenderChatRequest(messages=messages, add_generation_prompt=True), timeout=30
    ).text
    assert "What is 12*34?" in plain and plain != "What is 12*34?"
    assert prompted.startswith(plain) and len(prompted) > len(plain)


def test_prompt_over_the_model_length_is_invalid_argument_naming_the_limit(stub) -> None:
    long_text = unique_text(words=MAX_MODEL_LEN)
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(request(long_text), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_MODEL_LEN) in err.value.details()

    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(generation_pb2.GenerateRequest(prompt_token_ids=[1] * MAX_MODEL_LEN), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_MODEL_LEN) in err.value.details()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (generation_pb2.GenerateRequest(), "prompt"),
        (generation_pb2.GenerateRequest(prompt="x", prompt_token_ids=[1]), "prompt"),
        (generation_pb2.GenerateRequest(prompt_token_ids=[10_000_000]), "prompt_token_ids"),
        (request(temperature=-0.5), "sampling.temperature"),
        (request(top_p=1.5), "sampling.top_p"),
        (request(n=100_000), "sampling.n"),
        (request(max_tokens=10_000_000), "sampling.max_tokens"),
        (request(stop=[f"s{i}" for i in range(33)]), "sampling.stop"),
        (request(stop=[""]), "sampling.stop[0]"),
        (request(logprobs=1000), "sampling.logprobs"),
    ],
)
def test_bad_request_is_invalid_argument_naming_the_field(stub, bad, field: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(bad, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:")


def long_run() -> generation_pb2.GenerateRequest:
    """A generation that would decode for many seconds if nothing stopped it."""
    return request(max_tokens=MAX_MODEL_LEN - 64, ignore_eos=True)


def engine_idle_after_follow_up(stub, within_s: float = 2.0) -> bool:
    """True once a short call has passed through the engine and it reports nothing else running.

    The long run it follows would keep decoding for far longer than `within_s`.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        stub.Generate(request(max_tokens=2), timeout=30)
        info = stub.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=5)
        if info.running_requests == 0 and info.waiting_requests == 0 and info.unfinished_requests == 0:
            return True
    return False


def engine_reports(stub, condition, within_s: float) -> bool:  # noqa: ANN001
    """True once ModelInfo meets `condition` within `within_s`; prints what it saw otherwise."""
    deadline = time.monotonic() + within_s
    seen = set()
    while time.monotonic() < deadline:
        info = stub.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=5)
        if condition(info):
            return True
        seen.add((info.running_requests, info.waiting_requests))
        time.sleep(0.01)
    print(f"ModelInfo (running, waiting) seen: {sorted(seen)}")
    return False


def test_cancelled_stream_is_aborted_inside_the_engine(stub) -> None:
    call = stub.GenerateStream(long_run(), timeout=120)
    # A first chunk proves the engine holds the request (no timing window to miss).
    first = next(call)
    assert first.delta_token_ids, "the stream's first chunk carried no tokens"
    call.cancel()
    assert engine_idle_after_follow_up(stub), "the cancelled sequence is still decoding in the engine"


def test_call_past_its_deadline_is_aborted_inside_the_engine(stub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(long_run(), timeout=1.0)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert engine_idle_after_follow_up(stub), "the timed-out sequence is still decoding in the engine"


def test_concurrent_calls_are_all_in_the_engine_and_all_aborted(stub) -> None:
    calls = [stub.GenerateStream(long_run(), timeout=120) for _ in range(4)]
    try:
        # The engine holds several at once (no queue of one in front of it). The scheduler's
        # own batch figures are sampled by `startctl bench episode-throughput`.
        together = engine_reports(stub, lambda info: info.unfinished_requests >= 2, within_s=30.0)
        assert together, "never two calls in the engine at once"
    finally:
        for call in calls:
            call.cancel()
    assert engine_idle_after_follow_up(stub), "a cancelled sequence is still decoding in the engine"


def test_text_cut_inside_a_token_is_split_into_whole_ids_and_a_tail(stub) -> None:
    # A stop string that begins inside a generated token leaves part of that token in the
    # text: the ids to continue from are the whole tokens before it, the part is the tail.
    from transformers import AutoTokenizer

    from startctl.stack import MICRO_MODEL

    tokenizer = AutoTokenizer.from_pretrained(MICRO_MODEL)
    run = dict(max_tokens=40, ignore_eos=True)
    free = stub.Generate(request(**run), timeout=120).completions[0]
    pieces = [tokenizer.decode([t]) for t in free.token_ids]
    starts = [len(tokenizer.decode(list(free.token_ids[:i]))) for i in range(len(pieces))]
    cut = next(
        (i for i, p in enumerate(pieces) if len(p) >= 2 and free.text.find(p[1:]) == starts[i] + 1),
        None,
    )
    assert cut is not None, f"no multi-character token to cut inside in {pieces}"
    stop = pieces[cut][1:]

    done = stub.Generate(request(stop=[stop], **run), timeout=120).completions[0]
    assert done.stop_string == stop
    assert list(done.text_token_ids) == list(free.token_ids[:cut])
    assert done.text_tail == pieces[cut][0]
    assert tokenizer.decode(list(done.text_token_ids)) + done.text_tail == done.text

    whole = stub.Generate(request(max_tokens=8), timeout=120).completions[0]
    assert list(whole.text_token_ids) == list(whole.token_ids) and whole.text_tail == ""
