"""The values a generation call takes and gives, free of vLLM and of gRPC.

`validate.py` builds `Sampling` from a request, `engine.py` fills `Completion` and `Usage`
from vLLM's outputs, and `server.py` turns them into protos; batch jobs and benchmarks
that drive the engine directly use the same types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vllm.outputs import CompletionOutput


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one call, already validated (see validate.py)."""

    temperature: float = 0.0
    top_p: float = 1.0
    # None: up to the room left in the model's context.
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    seed: int | None = None
    n: int = 1
    logprobs: int = 0
    ignore_eos: bool = False


@dataclass
class Completion:
    """One sample: its text and ids, why it ended, and the stop string that ended it."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    # "stop" (stop string or end-of-sequence), "length" or "abort".
    finish_reason: str = ""
    stop_string: str = ""
    logprobs: list[float] = field(default_factory=list)
    # `text` as ids to continue from: decode(text_token_ids) + text_tail == text. Set when
    # the sample ends (the engine splits it; see GenerationEngine.split_at_text).
    text_token_ids: list[int] = field(default_factory=list)
    text_tail: str = ""

    def extend(self, out: CompletionOutput) -> None:
        """Append a delta (or, with FINAL_ONLY, the whole output) from vLLM."""
        self.text += out.text
        new_ids = list(out.token_ids)
        self.token_ids.extend(new_ids)
        if out.logprobs:
            # vLLM returns the top-k per position plus the sampled token; keep the sampled one.
            self.logprobs.extend(
                position[token].logprob for position, token in zip(out.logprobs, new_ids, strict=True)
            )
        if out.finish_reason is not None:
            self.finish_reason = out.finish_reason
            # stop_reason is the matched stop string, a stop token id, or None.
            self.stop_string = out.stop_reason if isinstance(out.stop_reason, str) else ""


@dataclass
class Usage:
    prompt_tokens: int = 0
    # Prompt tokens whose KV came from the prefix cache instead of a fresh prefill.
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Delta:
    """A streamed piece of sample `index`; `final` is set on that sample's last delta."""

    index: int
    text: str
    token_ids: list[int]
    final: Completion | None = None


@dataclass
class Result:
    completions: list[Completion]
    usage: Usage
