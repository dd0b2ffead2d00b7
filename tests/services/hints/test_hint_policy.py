"""The hint policy as plain Python: each stop reason, the K limit, tool-call limits, replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.episode import append_span, view_of
from services.common.text_contract import CLOSING_FENCE, END_THINK, PYTHON_FENCE, open_code_block
from services.hints.library import LibraryCatalog, LibraryError
from services.hints.policy import WORD_ENDINGS, HintPolicy
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2 as hpb

PROMPT = "<|im_start|>user\nWhat is 123 * 456?<|im_end|>\n<|im_start|>assistant\n<think>\n"


@pytest.fixture(scope="module")
def policy() -> HintPolicy:
    return HintPolicy(LibraryCatalog())


def next_action(policy: HintPolicy, episode: pb.Episode, reason: int, stop: str = "") -> hpb.NextActionResponse:
    """What the policy answers for the episode's view, as the orchestrator asks it."""
    return policy.next_action(view_of(episode), reason, stop)


def make_episode(
    hints: bool = True, probability: float = 1.0, k: int = 2, tools: int = 6, seed: int = 7, episode_id: str = "ep-1"
) -> pb.Episode:
    return pb.Episode(
        id=episode_id,
        spans=[
            pb.Span(kind=pb.SPAN_KIND_PROMPT, text=PROMPT),
            pb.Span(kind=pb.SPAN_KIND_MODEL, text="Rounding gives about 100 * 500.\n\n"),
        ],
        options=pb.EpisodeOptions(
            hints_enabled=hints,
            reflection_hint_probability=probability,
            max_think_hints=k,
            max_tool_calls=tools,
            seed=seed,
            max_total_tokens=1000,
        ),
    )


def test_start_stops_at_reflection_words_end_of_thinking_and_python_blocks(policy: HintPolicy) -> None:
    action = next_action(policy, make_episode(), hpb.STOP_REASON_START)
    assert action.kind == pb.ACTION_KIND_GENERATE
    words = [f"{word}{end}" for word in ("Wait", "Alternatively") for end in WORD_ENDINGS]
    assert list(action.stop) == [*words, END_THINK, PYTHON_FENCE]
    assert not action.append


@pytest.mark.parametrize("text", ["Waiting for", "Waitress", "Alternatively-minded", "Waits"])
def test_a_reflection_word_inside_a_longer_word_is_no_stop(policy: HintPolicy, text: str) -> None:
    stops = next_action(policy, make_episode(), hpb.STOP_REASON_START).stop
    assert not any(stop in text for stop in stops), text


@pytest.mark.parametrize("text", ["Wait, no.", "Wait.", "Wait\n", "Wait a moment", "Alternatively, try"])
def test_a_reflection_word_that_ends_there_is_a_stop(policy: HintPolicy, text: str) -> None:
    stops = next_action(policy, make_episode(), hpb.STOP_REASON_START).stop
    assert any(stop in text for stop in stops), text


def test_a_hint_at_a_word_replaces_what_ended_the_word_and_no_hint_keeps_it(policy: HintPolicy) -> None:
    hinted = next_action(policy, make_episode(probability=1.0), hpb.STOP_REASON_REFLECTION, "Wait\n")
    assert hinted.append[0].kind == pb.SPAN_KIND_HINT
    assert hinted.append[0].text.startswith("Wait") and not hinted.append[0].text.startswith("Wait\n")
    kept = next_action(policy, make_episode(probability=0.0), hpb.STOP_REASON_REFLECTION, "Wait\n")
    assert [(s.kind, s.text) for s in kept.append] == [(pb.SPAN_KIND_MODEL, "Wait\n")]


def test_the_policy_sets_each_calls_token_limit_from_the_budget_left(policy: HintPolicy) -> None:
    episode = make_episode()  # a budget of 1000 tokens, no per-call cap
    assert next_action(policy, episode, hpb.STOP_REASON_START).max_tokens == 1000
    episode.generated_tokens = 900
    assert next_action(policy, episode, hpb.STOP_REASON_TOOL_DONE).max_tokens == 100
    episode.options.sampling.max_tokens = 64
    assert next_action(policy, episode, hpb.STOP_REASON_TOOL_DONE).max_tokens == 64
    episode.options.max_total_tokens = 0
    episode.options.sampling.max_tokens = 0
    assert next_action(policy, episode, hpb.STOP_REASON_TOOL_DONE).max_tokens == 0, "no cap but the context"


def test_without_hints_only_code_blocks_and_end_of_thinking_are_caught(policy: HintPolicy) -> None:
    action = next_action(policy, make_episode(hints=False, probability=0.0, k=0), hpb.STOP_REASON_START)
    assert list(action.stop) == [END_THINK, PYTHON_FENCE]


def test_reflection_with_probability_one_inserts_a_hint_that_starts_with_the_word(policy: HintPolicy) -> None:
    action = next_action(policy, make_episode(), hpb.STOP_REASON_REFLECTION, "Alternatively")
    assert action.kind == pb.ACTION_KIND_GENERATE
    (hint,) = action.append
    assert hint.kind == pb.SPAN_KIND_HINT
    assert hint.text.startswith("Alternatively, ")
    assert open_code_block(hint.text) is not None, "a hint leaves a python block open for the model"
    assert hint.hint_id.startswith("math@1.0.0/") and hint.hint_category
    assert list(action.stop) == [CLOSING_FENCE]


def test_reflection_with_probability_zero_gives_the_word_back_to_the_model(policy: HintPolicy) -> None:
    action = next_action(policy, make_episode(probability=0.0), hpb.STOP_REASON_REFLECTION, "Wait")
    assert [(s.kind, s.text) for s in action.append] == [(pb.SPAN_KIND_MODEL, "Wait")]
    assert action.kind == pb.ACTION_KIND_GENERATE
    assert PYTHON_FENCE in action.stop


def test_reflection_hints_follow_the_probability(policy: HintPolicy) -> None:
    hinted = 0
    for n in range(400):
        episode = make_episode(probability=0.25, episode_id=f"ep-{n}")
        action = next_action(policy, episode, hpb.STOP_REASON_REFLECTION, "Wait")
        hinted += action.append[0].kind == pb.SPAN_KIND_HINT
    assert 60 <= hinted <= 140, hinted


def test_same_seed_episode_and_step_replay_the_same_choices(policy: HintPolicy) -> None:
    def choices(seed: int) -> list[str]:
        out = []
        for step in range(30):
            episode = make_episode(probability=0.5, seed=seed)
            episode.steps = step
            out.append(next_action(policy, episode, hpb.STOP_REASON_REFLECTION, "Wait").append[0].hint_id or "-")
        return out

    assert choices(1) == choices(1)
    assert choices(1) != choices(2)
    assert len(set(choices(1))) > 2, "several hints and no-hints are drawn"


def test_end_of_thinking_gets_a_hint_until_k_then_the_model_may_finish(policy: HintPolicy) -> None:
    episode = make_episode(k=2)
    episode.think_hints = 1
    action = next_action(policy, episode, hpb.STOP_REASON_END_THINK, END_THINK)
    assert action.append[0].kind == pb.SPAN_KIND_HINT
    assert action.append[0].text.startswith("Wait")
    assert list(action.stop) == [CLOSING_FENCE]

    episode.think_hints = 2
    action = next_action(policy, episode, hpb.STOP_REASON_END_THINK, END_THINK)
    assert [(s.kind, s.text) for s in action.append] == [(pb.SPAN_KIND_MODEL, END_THINK)]
    assert action.kind == pb.ACTION_KIND_GENERATE
    assert list(action.stop) == [], "code in the final answer is not run"


def test_model_opening_a_python_block_is_a_tool_call_while_calls_remain(policy: HintPolicy) -> None:
    action = next_action(policy, make_episode(), hpb.STOP_REASON_CODE_START, PYTHON_FENCE)
    assert [(s.kind, s.text) for s in action.append] == [(pb.SPAN_KIND_TOOL_CODE, PYTHON_FENCE)]
    assert list(action.stop) == [CLOSING_FENCE]


def test_closing_fence_runs_the_tool_while_calls_remain(policy: HintPolicy) -> None:
    action = next_action(policy, make_episode(), hpb.STOP_REASON_CODE_END, CLOSING_FENCE)
    assert action.kind == pb.ACTION_KIND_RUN_TOOL
    assert [(s.kind, s.text) for s in action.append] == [(pb.SPAN_KIND_TOOL_CODE, CLOSING_FENCE)]


def test_after_the_last_tool_call_no_more_hints_and_no_code_is_caught(policy: HintPolicy) -> None:
    episode = make_episode(tools=6)
    episode.tool_calls = 6
    assert list(next_action(policy, episode, hpb.STOP_REASON_TOOL_DONE).stop) == []
    action = next_action(policy, episode, hpb.STOP_REASON_END_THINK, END_THINK)
    assert [(s.kind, s.text) for s in action.append] == [(pb.SPAN_KIND_MODEL, END_THINK)]
    action = next_action(policy, episode, hpb.STOP_REASON_CODE_END, CLOSING_FENCE)
    assert action.kind == pb.ACTION_KIND_GENERATE
    assert action.append[0].kind == pb.SPAN_KIND_MODEL


def test_tool_done_continues_with_the_outside_code_stops(policy: HintPolicy) -> None:
    episode = make_episode()
    episode.tool_calls = 1
    action = next_action(policy, episode, hpb.STOP_REASON_TOOL_DONE)
    assert action.kind == pb.ACTION_KIND_GENERATE
    assert list(action.stop) == [*policy.reflection_stops, END_THINK, PYTHON_FENCE]


def test_after_end_of_thinking_nothing_is_caught(policy: HintPolicy) -> None:
    episode = make_episode()
    append_span(episode, pb.SPAN_KIND_MODEL, f"{END_THINK}\n\nThe answer is")
    assert list(next_action(policy, episode, hpb.STOP_REASON_TOOL_DONE).stop) == []


@pytest.mark.parametrize("reason", [hpb.STOP_REASON_EOS, hpb.STOP_REASON_LENGTH])
def test_eos_and_length_finish(policy: HintPolicy, reason: int) -> None:
    action = next_action(policy, make_episode(), reason)
    assert action.kind == pb.ACTION_KIND_FINISH and not action.append


def test_exhausted_token_budget_finishes_instead_of_hinting(policy: HintPolicy) -> None:
    episode = make_episode()
    episode.generated_tokens = 1000
    assert next_action(policy, episode, hpb.STOP_REASON_END_THINK, END_THINK).kind == pb.ACTION_KIND_FINISH


def test_code_tasks_draw_from_the_code_library_with_its_test_template(policy: HintPolicy) -> None:
    episode = make_episode()
    episode.problem.task_type = pb.TASK_TYPE_CODE
    hint = next_action(policy, episode, hpb.STOP_REASON_END_THINK, END_THINK).append[0]
    assert hint.hint_id.startswith("code@")
    assert "def solve" in open_code_block(hint.text)


def test_hints_follow_category_weights_then_hint_weights(policy: HintPolicy) -> None:
    library = policy.catalog.get("math")
    assert library.category_weights, "the math library weighs its categories"
    drawn: dict[str, int] = {}
    for n in range(3000):
        hint = next_action(policy, make_episode(episode_id=f"w-{n}"), hpb.STOP_REASON_END_THINK).append[0]
        drawn[hint.hint_id.split("/")[-1]] = drawn.get(hint.hint_id.split("/")[-1], 0) + 1
    category_total = sum(library.category_weights.values())
    for hint in library.hints:
        siblings = [h.weight for h in library.hints if h.category == hint.category]
        share = library.category_weights[hint.category] / category_total * hint.weight / sum(siblings)
        expected = 3000 * share
        assert abs(drawn.get(hint.id, 0) - expected) < 0.3 * expected + 15, (hint.id, drawn.get(hint.id), expected)


def test_category_weights_must_name_every_category(tmp_path: Path) -> None:
    (tmp_path / "partial.yaml").write_text(
        "name: partial\nversion: '1'\ndomain: math\ncategory_weights: {a: 1}\nhints:\n"
        "  - {id: x, category: a, text: \"Wait.\\n```python\\n\"}\n"
        "  - {id: y, category: b, text: \"Wait.\\n```python\\n\"}\n"
    )
    with pytest.raises(LibraryError, match="every category"):
        LibraryCatalog(tmp_path)


def test_a_users_library_directory_adds_a_domain_and_the_reflection_words_are_settings(tmp_path: Path) -> None:
    (tmp_path / "chem.yaml").write_text(
        "name: chemistry\nversion: '2'\ndomain: chemistry\nhints:\n"
        "  - id: moles\n    category: complex_calculation\n"
        "    text: \"Hmm, let me compute the moles in Python.\\n```python\\n\"\n"
    )
    policy = HintPolicy(LibraryCatalog(tmp_path), reflection_words=["Hmm"])
    episode = make_episode()
    episode.options.hint_library = "chemistry"
    assert list(next_action(policy, episode, hpb.STOP_REASON_START).stop)[0] == "Hmm "
    hint = next_action(policy, episode, hpb.STOP_REASON_REFLECTION, "Hmm").append[0]
    assert hint.hint_id == "chemistry@2/moles"
    assert hint.text.startswith("Hmm, let me compute")


def test_a_hint_that_does_not_open_a_python_block_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "name: bad\nversion: '1'\ndomain: math\nhints:\n  - {id: a, category: c, text: 'Wait, think again.'}\n"
    )
    with pytest.raises(LibraryError, match="open ```python block"):
        LibraryCatalog(tmp_path)
