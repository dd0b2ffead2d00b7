"""The hint policy: at every stop of the model, what the platform appends and how it goes on.

This is the brain of a hint-infer episode, as plain Python (no gRPC): the orchestrator
generates, classifies why generation stopped (`StopReason`) and asks
`HintPolicy.next_action(episode, stop_reason, stop_string)`; the answer says which spans
to append, whether to generate again (and with which stop strings), run the open python
block in the sandbox, or finish.

The paper's two insertion points:
  (a) after a reflection word ("Wait", "Alternatively"): with probability
      `options.reflection_hint_probability`, a hint that starts with that word;
  (b) before the end-of-thinking token: a hint instead of `</think>`, up to
      `options.max_think_hints` (K) times, which makes the model think longer.
Every hint opens a python block; the model's own python blocks are caught too, and at
most `options.max_tool_calls` blocks run. Every random choice comes from an RNG seeded by
(options.seed, episode id, step), so a run replays exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from services.common.episode import CLOSING_FENCE, END_THINK, PYTHON_FENCE
from services.hints.library import HintLibrary, HintSpec, LibraryCatalog
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2 as hpb

DEFAULT_REFLECTION_WORDS = ("Wait", "Alternatively")


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
        self.default_library = default_library
        self.code_library = code_library

    def library_name(self, episode: pb.Episode) -> str:
        """The episode's own library, else the default for its task type."""
        if episode.options.hint_library:
            return episode.options.hint_library
        if episode.problem.task_type == pb.TASK_TYPE_CODE:
            return self.code_library
        return self.default_library

    def library_for(self, episode: pb.Episode) -> HintLibrary | None:
        return self.catalog.get(self.library_name(episode))

    def next_action(self, episode: pb.Episode, stop_reason: int, stop_string: str = "") -> hpb.NextActionResponse:
        options = episode.options
        budget = options.max_total_tokens
        if stop_reason != hpb.STOP_REASON_START and budget > 0 and episode.generated_tokens >= budget:
            return _finish()
        match stop_reason:
            case hpb.STOP_REASON_START | hpb.STOP_REASON_TOOL_DONE:
                return _generate(self._outside_code_stops(episode))
            case hpb.STOP_REASON_REFLECTION:
                if self._can_hint(episode) and self._rng(episode).random() < options.reflection_hint_probability:
                    return self._hint(episode, stop_string)
                word = pb.Span(kind=pb.SPAN_KIND_MODEL, text=stop_string)
                return _generate(self._outside_code_stops(episode), word)
            case hpb.STOP_REASON_END_THINK:
                if self._can_hint(episode) and episode.think_hints < options.max_think_hints:
                    return self._hint(episode, "")
                # Past the end of thinking nothing is caught: the final answer may hold
                # code that must not run.
                return _generate([], pb.Span(kind=pb.SPAN_KIND_MODEL, text=END_THINK))
            case hpb.STOP_REASON_CODE_START:
                if _tool_calls_left(episode):
                    return _generate([CLOSING_FENCE], pb.Span(kind=pb.SPAN_KIND_TOOL_CODE, text=PYTHON_FENCE))
                return _generate(self._outside_code_stops(episode), pb.Span(kind=pb.SPAN_KIND_MODEL, text=PYTHON_FENCE))
            case hpb.STOP_REASON_CODE_END:
                if _tool_calls_left(episode):
                    return hpb.NextActionResponse(
                        kind=pb.ACTION_KIND_RUN_TOOL,
                        append=[pb.Span(kind=pb.SPAN_KIND_TOOL_CODE, text=CLOSING_FENCE)],
                    )
                fence = pb.Span(kind=pb.SPAN_KIND_MODEL, text=CLOSING_FENCE)
                return _generate(self._outside_code_stops(episode), fence)
            case hpb.STOP_REASON_EOS | hpb.STOP_REASON_LENGTH:
                return _finish()
        raise ValueError(f"unknown stop reason {stop_reason}")

    def _outside_code_stops(self, episode: pb.Episode) -> list[str]:
        """Stops while the model writes prose: reflection words, its own python blocks,
        and the end of thinking (to hint there, and to stop catching code after it)."""
        if thinking_done(episode) or not _tool_calls_left(episode):
            return []
        stops: list[str] = []
        if episode.options.hints_enabled and episode.options.reflection_hint_probability > 0:
            stops.extend(self.reflection_words)
        stops.extend([END_THINK, PYTHON_FENCE])
        return stops

    def _can_hint(self, episode: pb.Episode) -> bool:
        # A hint opens a python block, so it is pointless once no tool call is left.
        return episode.options.hints_enabled and _tool_calls_left(episode) and not thinking_done(episode)

    def _rng(self, episode: pb.Episode) -> random.Random:
        # String seeds are hashed with SHA-512 by `random`, so this is stable across runs
        # and Python processes (unlike hash()).
        return random.Random(f"{episode.options.seed}:{episode.id}:{episode.steps}")

    def _hint(self, episode: pb.Episode, reflection_word: str) -> hpb.NextActionResponse:
        library = self.library_for(episode)
        if library is None:
            raise ValueError(f"unknown hint library {self.library_name(episode)!r}")
        rng = self._rng(episode)
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


def thinking_done(episode: pb.Episode) -> bool:
    """True once `</think>` is in what the model or the platform appended."""
    if episode.thinking_done:
        return True
    return any(END_THINK in span.text for span in episode.spans if span.kind != pb.SPAN_KIND_PROMPT)


def _tool_calls_left(episode: pb.Episode) -> bool:
    return episode.tool_calls < episode.options.max_tool_calls


def _generate(stop: list[str], *append: pb.Span) -> hpb.NextActionResponse:
    return hpb.NextActionResponse(kind=pb.ACTION_KIND_GENERATE, append=list(append), stop=stop)


def _finish() -> hpb.NextActionResponse:
    return hpb.NextActionResponse(kind=pb.ACTION_KIND_FINISH)
