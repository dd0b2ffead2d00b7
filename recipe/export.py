"""Export a reviewed dataset for training, in two forms.

- `start`: the training stack's format (`training.data.Sample`, what `startctl train sft`
  reads; docs/training.md). The assistant turn keeps its typed spans, so the loss masks are
  exact: `model` and `tool_code` spans carry loss; the prompt, hints and tool outputs are
  attended to but carry none. The recorded prompt span is the exact rendered prompt the
  model saw, so training sees the tokens generation saw.
- `messages`: chat messages as TRL-style SFT trainers read them
  (`{"messages": [{"role": "user", ...}, {"role": "assistant", "content": TEXT}]}`). The
  assistant content is chosen so that the tokenizer's chat template renders the same text
  as the recorded prompt and response (checked for every row with a sentinel: the template
  must place the content where the recorded prompt ends). A chat message has no spans, so
  an assistant-only loss (TRL's `assistant_only_loss`, or a completion-only collator)
  puts loss on the whole assistant turn: hints and tool outputs included. Use `start` to
  keep them out of the loss; `messages` is for trainers that cannot read spans.

Only trajectories kept in review and passing every check are exported; the rest are
counted by reason. Every kept trajectory is checked again here (`recipe.review.check`),
so a dataset edited outside the review tools is still checked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from recipe.dataset import EXPORT_DIR, Dataset, jsonl, review_of
from recipe.review import check
from services.orchestrator.results import join, write_bytes_atomic
from training.data import Sample

Format = Literal["start", "messages"]
FORMATS: tuple[str, ...] = ("start", "messages")
_SENTINEL = "\x00START-CONTENT\x00"


@dataclass
class ExportResult:
    url: str
    format: str
    exported: int
    left_out: Counter = field(default_factory=Counter)


def default_url(dataset: Dataset, fmt: str) -> str:
    return join(dataset.url, EXPORT_DIR, f"{fmt}.jsonl")


def exportable(dataset: Dataset) -> tuple[list[Sample], Counter]:
    """Kept, unflagged trajectories that pass the checks; the rest counted by reason."""
    left_out: Counter = Counter()
    rows = []
    for sample in dataset.trajectories:
        review = review_of(sample)
        if review.status == "dropped":
            left_out["dropped in review"] += 1
        elif review.flags:
            left_out["flagged: " + review.flags[0].split(":")[0]] += 1
        elif problems := check(sample):
            left_out["failed a check: " + problems[0]] += 1
        else:
            rows.append(sample)
    return rows, left_out


def start_row(sample: Sample) -> dict:
    row = sample.model_dump(exclude_none=True)
    row["meta"] = {k: v for k, v in row["meta"].items() if k != "review"}
    row["meta"]["edited_in_review"] = review_of(sample).edited
    return row


class ChatTemplate:
    """Where a tokenizer's chat template puts the assistant's content, found with a sentinel."""

    def __init__(self, tokenizer_path: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)

    def split(self, history: list[dict]) -> tuple[str, str]:
        rendered = self.tokenizer.apply_chat_template(
            [*history, {"role": "assistant", "content": _SENTINEL}], tokenize=False
        )
        before, _, after = rendered.partition(_SENTINEL)
        return before, after


def messages_row(sample: Sample, template: ChatTemplate) -> dict:
    """Chat messages that the template renders as the recorded prompt + response."""
    history = [m.model_dump() for m in sample.messages[:-1]]
    spans = sample.spans
    prompt = spans[0].text if spans and spans[0].type == "prompt" else ""
    response = "".join(s.text for s in spans[1 if prompt else 0 :])
    before, _ = template.split(history)
    if prompt and not prompt.startswith(before):
        raise ValueError(
            f"{sample.id}: the recorded prompt was not rendered by this tokenizer's chat template (it should start"
            f" with {before[-40:]!r}); pass --tokenizer of the model that generated it, or export --format start"
        )
    content = prompt[len(before) :] + response
    return {"id": sample.id, "messages": [*history, {"role": "assistant", "content": content}],
            "meta": start_row(sample)["meta"]}


def export(dataset: Dataset, fmt: str, out: str | None = None, tokenizer_path: str | None = None) -> ExportResult:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    samples, left_out = exportable(dataset)
    if fmt == "start":
        rows = [start_row(s) for s in samples]
    else:
        if not tokenizer_path:
            raise ValueError("--format messages needs --tokenizer (the model whose chat template rendered the prompts)")
        template = ChatTemplate(tokenizer_path)
        rows = [messages_row(s, template) for s in samples]
    url = out or default_url(dataset, fmt)
    if not url.endswith(".jsonl"):  # a folder: the file is named for its format
        url = join(url, f"{fmt}.jsonl")
    write_bytes_atomic(url, jsonl(rows))
    return ExportResult(url=url, format=fmt, exported=len(rows), left_out=left_out)
