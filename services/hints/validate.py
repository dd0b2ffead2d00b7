"""Checks on hint requests, once, at the edge: the policy below trusts what passes."""

from __future__ import annotations

from services.common.episode import MAX_TAIL_CHARS
from services.common.errors import InvalidArgument, require
from services.hints.library import HintLibrary
from services.hints.policy import HintPolicy
from start.v1 import hints_pb2 as hpb

_STOP_REASONS = [name for name in hpb.StopReason.DESCRIPTOR.values_by_name if name != "STOP_REASON_UNSPECIFIED"]


def validate_next_action(request: hpb.NextActionRequest, policy: HintPolicy) -> None:
    require(request.HasField("view"), "view", "missing; send the episode's view (services.common.episode.view_of)")
    view = request.view
    require(bool(view.id), "view.id", "empty; every episode has an id")
    require(
        len(view.tail) <= MAX_TAIL_CHARS,
        "view.tail",
        f"{len(view.tail)} characters; send at most the last {MAX_TAIL_CHARS} of the episode's text",
    )
    for name in ("steps", "tool_calls", "think_hints", "reflection_hints", "generated_tokens"):
        require(getattr(view, name) >= 0, f"view.{name}", "must be >= 0")
    require(
        request.stop_reason in hpb.StopReason.values() and request.stop_reason != hpb.STOP_REASON_UNSPECIFIED,
        "stop_reason",
        f"{request.stop_reason} is not a stop reason; use one of {', '.join(_STOP_REASONS)}",
    )
    if request.stop_reason == hpb.STOP_REASON_REFLECTION:
        require(bool(request.stop_string), "stop_string", "empty; a REFLECTION stop names the word it stopped at")
    options = view.options
    require(
        0.0 <= options.reflection_hint_probability <= 1.0,
        "view.options.reflection_hint_probability",
        f"{options.reflection_hint_probability} is not a probability in [0, 1]",
    )
    require(options.max_think_hints >= 0, "view.options.max_think_hints", "must be >= 0")
    require(options.max_tool_calls >= 0, "view.options.max_tool_calls", "must be >= 0")
    library_exists(policy, policy.library_name(view), "view.options.hint_library")


def library_exists(policy: HintPolicy, name: str, field: str) -> HintLibrary:
    library = policy.catalog.get(name)
    if library is None:
        raise InvalidArgument(field, f"unknown hint library {name!r}; known: {', '.join(policy.catalog.names())}")
    return library
