"""The hint policy: at every stop of the model, what the platform appends and how it goes on.

This is the brain of a hint-infer episode, as plain Python (no gRPC): the orchestrator
generates, classifies why generation stopped (`StopReason`) and asks
`HintPolicy.next_action(view, stop_reason, stop_string)`; the answer says which spans
to append, whether to generate again (with which stop strings, and how many tokens at
most: the policy owns the token budget), run the open python block in the sandbox, or
finish. It reads an `EpisodeView` (options, counters, the end of the text), never the
whole episode: the orchestrator owns the counters and sends only them.

The paper's two insertion points:
  (a) after a reflection word ("Wait", "Alternatively"): with probability
      `options.reflection_hint_probability`, a hint that starts with that word. The word
      must end there ("Wait," or "Wait " but not "Waiting"): the stop strings are the
      word followed by each of `WORD_ENDINGS`;
  (b) before the end-of-thinking token: a hint instead of `</think>`, up to
      `options.max_think_hints` (K) times, which makes the model think longer.
Every hint opens a python block; the model's own python blocks are caught too, and at
most `options.max_tool_calls` blocks run. Every random choice comes from an RNG seeded by
(options.seed, episode id, step), so a run replays exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from services.common.text_contract import CLOSING_FENCE, END_THINK, PYTHON_FENCE
from services.hints.library import HintLibrary, HintSpec, LibraryCatalog
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2 as hpb

DEFAULT_REFLECTION_WORDS = ("Wait", "Alternatively")
# What may follow a reflection word for it to be one: a stop at the bare word would fire
# inside "Waiting" or "Waitress". The engine matches stop strings as plain text, so the
# word is caught with what ends it.
WORD_ENDINGS = (" ", ",", ".", "!", "?", ":", ";", "\n", "\u2014")


class HintPolicy:
    """Decides an episode's next action from its state and why the model stopped."""

    def __init__(
        self,
        catalog: LibraryCatalog,
        reflection_words: Sequence[str] = DEFAULT_REFLECTION_WORDS,
        default_library: str = "math",
        code_library: str = "code",
    ) -> None:
        self.catalog = catalog
        self.reflection_words = tuple(reflection_words)
        self.reflection_stops = tuple(word + end for word in self.reflection_words for end in WORD_ENDINGS)
        self.default_library = default_library
        self.code_library = code_library

    def library_name(self, view: hpb.EpisodeView) -> str:
        """The episode's own library, else the default for its task type."""
        if view.options.hint_library:
            return view.options.hint_library
        if view.task_type == pb.TASK_TYPE_CODE:
            return self.code_library
        return self.default_library

    def library_for(self, view: hpb.EpisodeView) -> HintLibrary | None:
        return self.catalog.get(self.library_name(view))

    def next_action(self, view: hpb.EpisodeView, stop_reason: int, stop_string: str = "") -> hpb.NextActionResponse:
        action = self._decide(view, stop_reason, stop_string)
        if action.kind == pb.ACTION_KIND_GENERATE:
            action.max_tokens = tokens_for_next_call(view)
        return action

    def _decide(self, view: hpb.EpisodeView, stop_reason: int, stop_string: str) -> hpb.NextActionResponse:
        options = view.options
        if stop_reason != hpb.STOP_REASON_START and budget_spent(view):
            return _finish()
        match stop_reason:
            case hpb.STOP_REASON_START | hpb.STOP_REASON_TOOL_DONE:
                return _generate(self._outside_code_stops(view))
            case hpb.STOP_REASON_REFLECTION:
                if self._can_hint(view) and self._rng(view).random() < options.reflection_hint_probability:
                    return self._hint(view, self._reflection_word(stop_string))
                # Not hinted: the model's words go on as it wrote them, what ended the word too.
                word = pb.Span(kind=pb.SPAN_KIND_MODEL, text=stop_string)
                return _generate(self._outside_code_stops(view), word)
            case hpb.STOP_REASON_END_THINK:
                if self._can_hint(view) and view.think_hints < options.max_think_hints:
                    return self._hint(view, "")
                # Past the end of thinking nothing is caught: the final answer may hold
                # code that must not run.
                return _generate([], pb.Span(kind=pb.SPAN_KIND_MODEL, text=END_THINK))
            case hpb.STOP_REASON_CODE_START:
                if _tool_calls_left(view):
                    return _generate([CLOSING_FENCE], pb.Span(kind=pb.SPAN_KIND_TOOL_CODE, text=PYTHON_FENCE))
                return _generate(self._outside_code_stops(view), pb.Span(kind=pb.SPAN_KIND_MODEL, text=PYTHON_FENCE))
            case hpb.STOP_REASON_CODE_END:
                if _tool_calls_left(view):
                    return hpb.NextActionResponse(
                        kind=pb.ACTION_KIND_RUN_TOOL,
                        append=[pb.Span(kind=pb.SPAN_KIND_TOOL_CODE, text=CLOSING_FENCE)],
                    )
                fence = pb.Span(kind=pb.SPAN_KIND_MODEL, text=CLOSING_FENCE)
                return _generate(self._outside_code_stops(view), fence)
            case hpb.STOP_REASON_EOS | hpb.STOP_REASON_LENGTH:
                return _finish()
        raise ValueError(f"unknown stop reason {stop_reason}")

    def _outside_code_stops(self, view: hpb.EpisodeView) -> list[str]:
        """Stops while the model writes prose: reflection words, its own python blocks,
        and the end of thinking (to hint there, and to stop catching code after it)."""
        if view.thinking_done or not _tool_calls_left(view):
            return []
        stops: list[str] = []
        if view.options.hints_enabled and view.options.reflection_hint_probability > 0:
            stops.extend(self.reflection_stops)
        stops.extend([END_THINK, PYTHON_FENCE])
        return stops

    def _reflection_word(self, stop_string: str) -> str:
        """The word a reflection stop caught, without what ended it."""
        for word in self.reflection_words:
            if stop_string.startswith(word):
                return word
        return stop_string

    def _can_hint(self, view: hpb.EpisodeView) -> bool:
        # A hint opens a python block, so it is pointless once no tool call is left.
        return view.options.hints_enabled and _tool_calls_left(view) and not view.thinking_done

    def _rng(self, view: hpb.EpisodeView) -> random.Random:
        # String seeds are hashed with SHA-512 by `random`, so this is stable across runs
        # and Python processes (unlike hash()).
        return random.Random(f"{view.options.seed}:{view.id}:{view.steps}")

    def _hint(self, view: hpb.EpisodeView, reflection_word: str) -> hpb.NextActionResponse:
        library = self.library_for(view)
        if library is None:
            raise ValueError(f"unknown hint library {self.library_name(view)!r}")
        rng = self._rng(view)
        rng.random()  # the draw that decided to hint at a reflection word
        hint = library.draw(rng)
        span = pb.Span(
            kind=pb.SPAN_KIND_HINT,
            text=self._hint_text(hint, reflection_word),
            hint_id=f"{library.name}@{library.version}/{hint.id}",
            hint_category=hint.category,
        )
        return _generate([CLOSING_FENCE], span)

    def _hint_text(self, hint: HintSpec, reflection_word: str) -> str:
        """At a reflection word the hint starts with that word (it was cut by the stop)."""
        if not reflection_word:
            return hint.text
        for word in self.reflection_words:
            if hint.text.startswith(word):
                return reflection_word + hint.text[len(word) :]
        return f"{reflection_word}, {hint.text}"


def budget_spent(view: hpb.EpisodeView) -> bool:
    """The episode has generated all the tokens its options allow."""
    budget = view.options.max_total_tokens
    return budget > 0 and view.generated_tokens >= budget


def tokens_for_next_call(view: hpb.EpisodeView) -> int:
    """The most tokens the next generation call may write: the budget left, within the
    per-call cap; 0 when neither is set (the engine then stops at the model's context)."""
    limits = []
    if view.options.max_total_tokens > 0:
        limits.append(max(1, view.options.max_total_tokens - view.generated_tokens))
    if view.options.sampling.max_tokens > 0:
        limits.append(view.options.sampling.max_tokens)
    return min(limits, default=0)


def _tool_calls_left(view: hpb.EpisodeView) -> bool:
    return view.tool_calls < view.options.max_tool_calls


def _generate(stop: list[str], *append: pb.Span) -> hpb.NextActionResponse:
    return hpb.NextActionResponse(kind=pb.ACTION_KIND_GENERATE, append=list(append), stop=stop)


def _finish() -> hpb.NextActionResponse:
    return hpb.NextActionResponse(kind=pb.ACTION_KIND_FINISH)
