"""The training data format, and how one sample becomes token ids and loss labels.

One JSON object per line (docs/training.md has the full description):

    {"id": "...", "messages": [
        {"role": "user", "content": "What is 1234 * 5678?"},
        {"role": "assistant", "content": [
            {"type": "prompt", "text": "<|im_start|>user\\n...<|im_start|>assistant\\n<think>\\n"},
            {"type": "model", "text": "Let me think..."},
            {"type": "hint", "text": "Wait, I can use Python to check.```python\\n"},
            {"type": "tool_code", "text": "print(1234 * 5678)\\n```"},
            {"type": "tool_output", "text": "\\n```output\\n7006652\\n```\\n"},
            {"type": "model", "text": "</think> The answer is \\\\boxed{7006652}."}]}]}

The assistant message's content is a list of typed spans; `model` and `tool_code` spans
carry loss, `prompt`, `hint` and `tool_output` spans do not (they stay in the context and
are attended to: the mask is on the loss, never on attention). That is the paper's setting;
`LossPolicy` can also put the loss on hints, or on the python fence a hint ends with, for
the ablation of the micro recipe (docs/training.md). The text trained on is the
chat template's rendering of the messages before the assistant turn (with the generation
prompt), then the spans in order, then the end-of-turn token. When the assistant content
starts with a `prompt` span, that span *is* the rendered prompt (the exact text the model
saw when the sample was generated) and the earlier messages are kept for people reading
the data only. Sits between the dataset export (or `training.convert` for episodes) and
packing (`training.packing`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from transformers import PreTrainedTokenizerBase

from services.common.text_contract import PYTHON_FENCE

IGNORE_INDEX = -100  # label of a token that carries no loss (torch's cross-entropy default)

SpanType = Literal["prompt", "model", "hint", "tool_code", "tool_output"]
LOSS_SPANS: frozenset[str] = frozenset({"model", "tool_code"})


class Span(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: SpanType
    text: str
    hint_id: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[Span]


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = ""
    messages: list[Message] = Field(..., min_length=1)
    meta: dict = Field(default_factory=dict, description="Free-form provenance (problem id, source, score).")

    @model_validator(mode="after")
    def _assistant_last(self) -> Sample:
        last = self.messages[-1]
        if last.role != "assistant" or not isinstance(last.content, list):
            raise ValueError("the last message must be the assistant's, with a list of typed spans")
        if any(isinstance(m.content, list) for m in self.messages[:-1]):
            raise ValueError("only the last (assistant) message has typed spans")
        return self

    @property
    def spans(self) -> list[Span]:
        return self.messages[-1].content  # type: ignore[return-value]


@dataclass(frozen=True)
class Encoded:
    """One sample as tokens: ids, and labels equal to the id where it carries loss."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def loss_tokens(self) -> int:
        """Tokens the loss is taken on: the first token is never a target (nothing precedes it)."""
        return sum(label != IGNORE_INDEX for label in self.labels[1:])


@dataclass(frozen=True)
class LossPolicy:
    """Which hint tokens carry loss. The paper's setting, the default, is none: a model
    trained so learns what to do after a hint, not to write one itself. `hints`: the whole
    hint is trained on, as if the model had written it; `hint_fence`: only the python fence
    (and line break) a hint ends with, so the model learns to open the block after a hint."""

    hints: bool = False
    hint_fence: bool = False

    def pieces(self, span: Span) -> list[tuple[str, bool]]:
        if span.type != "hint":
            return [(span.text, span.type in LOSS_SPANS)]
        if self.hints:
            return [(span.text, True)]
        fence = span.text.rfind(PYTHON_FENCE)
        if not self.hint_fence or fence < 0:
            return [(span.text, False)]
        return [(span.text[:fence], False), (span.text[fence:], True)]


def text_pieces(
    sample: Sample, tokenizer: PreTrainedTokenizerBase, end_of_turn: str, loss: LossPolicy = LossPolicy()
) -> list[tuple[str, bool]]:
    """The sample's text as (piece, carries loss) in order."""
    spans = sample.spans
    pieces: list[tuple[str, bool]] = []
    if not (spans and spans[0].type == "prompt"):
        history = [m.model_dump() for m in sample.messages[:-1]]
        prompt = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
        pieces.append((prompt, False))
    pieces.extend(piece for span in spans for piece in loss.pieces(span) if piece[0])
    # The model must learn to end its turn; a recorded response usually lacks the token
    # because the engine strips it.
    if end_of_turn and not pieces[-1][0].endswith(end_of_turn):
        pieces.append((end_of_turn, True))
    return pieces


def encode(
    sample: Sample, tokenizer: PreTrainedTokenizerBase, end_of_turn: str, max_len: int, loss: LossPolicy = LossPolicy()
) -> Encoded:
    """Tokenize the whole text at once (as generation re-tokenizes it) and give each token
    the loss flag of the span its first character lies in; truncate to max_len."""
    text, flags = "", []
    for piece, trained in text_pieces(sample, tokenizer, end_of_turn, loss):
        text += piece
        flags.extend([trained] * len(piece))
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    ids = list(enc["input_ids"])[:max_len]
    labels = [
        tok if flags[start] else IGNORE_INDEX
        for tok, (start, _) in zip(ids, enc["offset_mapping"][: len(ids)], strict=True)
    ]
    return Encoded(ids, labels)


def read_samples(paths: Iterable[str | Path]) -> Iterator[Sample]:
    """Samples of JSONL files, validated; a bad line names its file and line number."""
    for path in paths:
        with open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield Sample.model_validate_json(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{lineno}: not a training sample: {exc}") from exc


def write_samples(samples: Iterable[Sample], path: str | Path) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w") as fh:
        for sample in samples:
            fh.write(json.dumps(sample.model_dump(exclude_none=True)) + "\n")
            count += 1
    return count
