"""The training format: episodes convert span for span, and only model and tool-code tokens carry loss."""

from __future__ import annotations

import pytest

from tests.training.episodes import PROMPT, SPANS, episode_record
from training.convert import convert_records, episode_to_sample
from training.data import IGNORE_INDEX, LossPolicy, Sample, encode, read_samples, text_pieces


def test_episode_converts_span_for_span_with_the_exact_prompt_text() -> None:
    sample = episode_to_sample(episode_record())
    assert [s.type for s in sample.spans] == ["prompt", "model", "hint", "tool_code", "tool_output", "model"]
    assert "".join(s.text for s in sample.spans) == "".join(text for _, text in SPANS)
    assert sample.messages[0].role == "user" and sample.messages[0].content == "What is 17 * 23?"
    assert sample.meta["problem_id"] == "p1" and sample.meta["correct"] is True


def test_only_model_and_tool_code_tokens_carry_loss(tokenizer) -> None:
    sample = episode_to_sample(episode_record())
    encoded = encode(sample, tokenizer, "<|im_end|>", max_len=4096)
    pairs = list(zip(encoded.input_ids, encoded.labels, strict=True))
    trained = tokenizer.decode([t for t, y in pairs if y != IGNORE_INDEX])
    # A token belongs to the span its first character is in: where the tokenizer merges the
    # closing fence with the next newline ("```\n"), that newline goes with the tool code.
    fence = tokenizer.decode(tokenizer("```\n```output", add_special_tokens=False).input_ids[:1])
    assert fence in ("```", "```\n")
    expected = "17 * 23 is about 400.\n" + "print(17 * 23)\n" + fence + SPANS[-1][1] + "<|im_end|>"
    assert trained == expected
    untrained = tokenizer.decode([t for t, y in pairs if y == IGNORE_INDEX])
    assert untrained == PROMPT + SPANS[2][1] + SPANS[4][1].removeprefix(fence[3:])


@pytest.mark.parametrize(
    ("policy", "trained_hint"),
    [
        (LossPolicy(), ""),  # the paper: the hint stays in the context, with no loss
        (LossPolicy(hint_fence=True), "```python\n"),  # only the fence the hint opens
        (LossPolicy(hints=True), SPANS[2][1]),  # the whole hint, as if the model wrote it
        (LossPolicy(hints=True, hint_fence=True), SPANS[2][1]),
    ],
)
def test_the_loss_policy_decides_which_hint_characters_carry_loss(tokenizer, policy, trained_hint) -> None:
    pieces = text_pieces(episode_to_sample(episode_record()), tokenizer, "<|im_end|>", policy)
    assert "".join(text for text, _ in pieces) == "".join(text for _, text in SPANS) + "<|im_end|>"
    hint_start = len(PROMPT) + len(SPANS[1][1])
    text, flags = "", []
    for piece, trained in pieces:
        text, flags = text + piece, flags + [trained] * len(piece)
    hint = range(hint_start, hint_start + len(SPANS[2][1]))
    assert "".join(text[i] for i in hint if flags[i]) == trained_hint
    # Model text and tool code carry loss, the tool's output never, whatever the policy.
    assert all(flags[i] for i in range(len(PROMPT), hint_start))
    output_start = hint_start + len(SPANS[2][1]) + len(SPANS[3][1])
    assert not any(flags[output_start : output_start + len(SPANS[4][1])])


def test_sample_without_prompt_span_is_rendered_with_the_chat_template(tokenizer) -> None:
    sample = Sample.model_validate(
        {"messages": [{"role": "user", "content": "What is 17 * 23?"},
                      {"role": "assistant", "content": [{"type": "model", "text": "391<|im_end|>"}]}]}
    )
    pieces = text_pieces(sample, tokenizer, "<|im_end|>")
    assert pieces == [(PROMPT, False), ("391<|im_end|>", True)]


def test_episode_without_model_text_is_skipped_not_trained_on() -> None:
    samples, skipped = convert_records([episode_record(SPANS[:1]), episode_record()])
    assert len(samples) == 1 and skipped == 1


def test_bad_sample_line_is_reported_with_file_and_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    good = episode_to_sample(episode_record()).model_dump_json()
    path.write_text(good + "\n" + '{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        list(read_samples([path]))
