"""Checks every generation request once, at the edge, and turns it into domain values.

The servicer calls these before anything reaches the engine; a bad field raises
`InvalidArgument(field, what would be valid)`, which the shared runtime returns as
INVALID_ARGUMENT. What passes is trusted by `engine.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.common.errors import InvalidArgument, require
from services.generation.domain import Sampling
from start.v1 import common_pb2, generation_pb2


@dataclass(frozen=True)
class Limits:
    """What the loaded model and the service's settings allow."""

    max_model_len: int
    vocab_size: int
    # The longest text one token can stand for: bounds a text prompt before tokenising it.
    max_chars_per_token: int
    max_n: int
    max_stop_strings: int
    max_stop_chars: int
    max_logprobs: int


def prompt(request: generation_pb2.GenerateRequest, limits: Limits) -> tuple[list[str | list[int]], bool]:
    """The prompt as parts, text to tokenise and ids as they are, in order; and whether
    its text gets the tokenizer's special tokens (a bare text prompt does, as in vLLM;
    context pieces do not: they carry a rendered chat template). Exactly one of prompt,
    prompt_token_ids and context; non-empty; ids in the vocabulary; text within reach of
    the model's limit."""
    given = [name for name in ("prompt", "prompt_token_ids", "context") if _given(request, name)]
    require(
        len(given) <= 1, given[0] if given else "prompt",
        f"give one of prompt (text), prompt_token_ids or context, not {' and '.join(given)}",
    )
    require(bool(given), "prompt", "empty; give the text to continue, its token ids, or the context as pieces")
    if request.prompt:
        parts: list[str | list[int]] = [request.prompt]
    elif request.prompt_token_ids:
        parts = [list(request.prompt_token_ids)]
    else:
        parts = [_piece(piece, i) for i, piece in enumerate(request.context)]
    for i, part in enumerate(parts):
        if isinstance(part, list):
            bad = next((t for t in part if not 0 <= t < limits.vocab_size), None)
            field = "prompt_token_ids" if request.prompt_token_ids else f"context[{i}].token_ids"
            require(bad is None, field, f"id {bad} is outside the vocabulary [0, {limits.vocab_size})")
    # Tokenising megabytes of text only to reject it would tie up a CPU: refuse it by size.
    chars = sum(len(part) for part in parts if isinstance(part, str))
    require(
        chars <= limits.max_model_len * limits.max_chars_per_token,
        given[0],
        f"{chars} characters of text cannot fit the model's limit of {limits.max_model_len} tokens",
    )
    return parts, bool(request.prompt)


def _given(request: generation_pb2.GenerateRequest, name: str) -> bool:
    return bool(getattr(request, name))


def _piece(piece: generation_pb2.ContextPiece, index: int) -> str | list[int]:
    which = piece.WhichOneof("piece")
    require(which is not None, f"context[{index}]", "empty; set its token_ids or its text")
    if which == "text":
        require(bool(piece.text), f"context[{index}].text", "empty; leave the piece out instead")
        return piece.text
    require(len(piece.token_ids.token_ids) > 0, f"context[{index}].token_ids", "empty; leave the piece out instead")
    return list(piece.token_ids.token_ids)


def prompt_length(n_tokens: int, limits: Limits) -> None:
    """A prompt must leave room for at least one generated token."""
    if n_tokens >= limits.max_model_len:
        raise InvalidArgument(
            "prompt",
            f"{n_tokens} tokens is over the model's limit of {limits.max_model_len} tokens "
            f"(prompt plus at least one generated token); shorten it",
        )


def sampling(
    params: common_pb2.SamplingParams, limits: Limits, prompt_tokens: int, fit_to_context: bool = False
) -> Sampling:
    """Sampling settings with the proto's defaults applied (0 means 'unset' in proto3)."""
    require(
        math.isfinite(params.temperature) and params.temperature >= 0,
        "sampling.temperature",
        f"{params.temperature} is not allowed; use 0 (greedy) or a positive number",
    )
    require(
        params.top_p == 0 or (math.isfinite(params.top_p) and 0 < params.top_p <= 1),
        "sampling.top_p",
        f"{params.top_p} is outside (0, 1]; 0 or 1 means no nucleus cut",
    )
    room = limits.max_model_len - prompt_tokens
    # An episode's call (`fit_to_context`) gives its token budget as max_tokens, which may be
    # more than the model's context: what it asks is "at most", so it is cut to the room.
    require(
        params.max_tokens >= 0 and (params.max_tokens <= limits.max_model_len or fit_to_context),
        "sampling.max_tokens",
        f"{params.max_tokens} is outside [0, {limits.max_model_len}]; 0 means up to the room left",
    )
    require(
        0 <= params.n <= limits.max_n,
        "sampling.n",
        f"{params.n} samples is outside [1, {limits.max_n}] (0 is read as 1)",
    )
    require(
        len(params.stop) <= limits.max_stop_strings,
        "sampling.stop",
        f"{len(params.stop)} stop strings; at most {limits.max_stop_strings}",
    )
    for i, stop in enumerate(params.stop):
        require(
            0 < len(stop) <= limits.max_stop_chars,
            f"sampling.stop[{i}]",
            f"a stop string must have 1 to {limits.max_stop_chars} characters",
        )
    require(
        0 <= params.logprobs <= limits.max_logprobs,
        "sampling.logprobs",
        f"{params.logprobs} is outside [0, {limits.max_logprobs}]",
    )
    return Sampling(
        temperature=params.temperature,
        top_p=params.top_p or 1.0,
        # Capped at the room left in the context: such a completion ends with LENGTH.
        max_tokens=min(params.max_tokens, room) if params.max_tokens else room,
        stop=tuple(params.stop),
        include_stop_str_in_output=params.include_stop_str_in_output,
        seed=params.seed if params.HasField("seed") else None,
        n=params.n or 1,
        logprobs=params.logprobs,
        ignore_eos=params.ignore_eos,
    )


def tokenize(request: generation_pb2.TokenizeRequest, limits: Limits) -> list[str]:
    """The texts to tokenise: `text` alone, or each of `pieces`."""
    require(
        bool(request.text) != bool(request.pieces),
        "text",
        "give either text or pieces (one text, or several tokenised each on its own)",
    )
    texts = [request.text] if request.text else list(request.pieces)
    for i, piece in enumerate(texts):
        require(bool(piece), f"pieces[{i}]", "empty; every piece needs some text")
    field = "text" if request.text else "pieces"
    total = sum(len(t) for t in texts)
    require(
        total <= limits.max_model_len * limits.max_chars_per_token,
        field,
        f"{total} characters is far beyond the model's limit of {limits.max_model_len} tokens",
    )
    return texts


def chat(request: generation_pb2.RenderChatRequest) -> list[dict[str, str]]:
    require(len(request.messages) > 0, "messages", "empty; give at least one message")
    for i, message in enumerate(request.messages):
        require(bool(message.role), f"messages[{i}].role", "empty; use system, user or assistant")
    return [{"role": m.role, "content": m.content} for m in request.messages]
