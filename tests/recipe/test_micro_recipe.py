"""The START recipe on the micro base model (`startctl demo --full`, startctl/recipe_run.py).

The slow test runs a reduced recipe on the whole platform (vLLM CPU, gVisor, Celery over
Redis, DeepSpeed on two CPU processes) and asserts the paper's first two effects on held-out
problems. They could fail: the base model was trained on traces with python in its own
words in a small share only and never saw a hint text, its greedy answers to easy problems
are right and to hard ones wrong, and nothing in the recipe's data says which answer is
right except the grader's verdict on what the model itself wrote. START-0 is trained with
loss on the hint tokens, the setting the ablation of `demo --full` shows reaching the
floors (the paper's setting, no loss on hints, leaves START-0 calling the tool by itself in
no episode: README, "The micro recipe").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from startctl.recipe_run import HINT_GAIN, START0_GAIN, START0_TOOL_USE, Plan, RecipeRun, floors, render_markdown


@pytest.mark.slow
@pytest.mark.runsc
def test_a_reduced_recipe_shows_hint_infer_and_start0_beating_the_base_model(tmp_path: Path) -> None:
    plan = Plan(held_out_limit=32, settings=("hint",), ks=(), rft=False, timeout_s=1500)
    figures = RecipeRun(plan, tmp_path, Console(file=(tmp_path / "console.log").open("w"), width=120)).run()

    assert figures["problems"] == 32
    # Effect 1: hints at inference turn the base model's wrong answers right.
    assert figures["hint_accuracy"] >= figures["greedy_accuracy"] + HINT_GAIN, figures
    # Effect 2: START-0, without any hint, beats the base and calls the tool by itself.
    assert figures["start0_setting"] == "hint"
    assert figures["start0_greedy_accuracy"] >= figures["base_greedy_accuracy"] + START0_GAIN, figures
    assert figures["start0_tool_use"] >= START0_TOOL_USE, figures

    # The report says the same, in a table and plots, and keeps what it was made from.
    report = (tmp_path / "report.md").read_text()
    assert "| START-0 (hint) greedy | 32 |" in report and "![accuracy by stage](stages.png)" in report
    assert (tmp_path / "stages.png").stat().st_size > 0
    assert json.loads((tmp_path / "figures.json").read_text())["floors_met"] is True
    card = (tmp_path / "datasets" / "hint-rft" / "README.md").read_text()
    assert "hint-rft" in card
    assert (tmp_path / "models" / "start-0-hint" / "final" / "config.json").is_file()


def _figures(**changes: object) -> dict:
    figures = {
        "base_greedy_accuracy": 0.34, "hint_accuracy": 1.0, "start0_greedy_accuracy": 0.84,
        "start0_tool_use": 0.98, "start_greedy_accuracy": 0.80,
        "k_curve": {"0": 0.34, "1": 0.9, "2": 0.9, "4": 0.88, "8": 0.86},
    }
    return {**figures, **changes}


def test_floors_are_computed_from_the_figures() -> None:
    met = floors(_figures(), start0_interval=[0.75, 0.92])
    assert all(row["met"] for row in met.values()), met
    assert not floors(_figures(hint_accuracy=0.5), [0.75, 0.92])["hint-infer over greedy"]["met"]
    assert not floors(_figures(start0_tool_use=0.49), [0.75, 0.92])["START-0 tool use"]["met"]
    # START may be below START-0 inside START-0's interval, not beyond it.
    assert floors(_figures(start_greedy_accuracy=0.75), [0.75, 0.92])["START vs START-0"]["met"]
    assert not floors(_figures(start_greedy_accuracy=0.74), [0.75, 0.92])["START vs START-0"]["met"]
    falling = floors(_figures(k_curve={"0": 0.34, "1": 0.9, "8": 0.84}), [0.75, 0.92])
    assert not falling["K curve K=1 -> K=8"]["met"] and falling["K curve rises 0 -> 1"]["met"]
    # What a reduced run did not measure is neither met nor missed.
    reduced = floors(_figures(start_greedy_accuracy=None, k_curve={}), [0.75, 0.92])
    assert reduced["START vs START-0"]["met"] is None and reduced["K curve"]["met"] is None


def test_the_report_names_each_floor_and_the_setting_chosen() -> None:
    figures = _figures(
        problems=64, seconds=1, start0_setting="hint", start0_k_curve={},
        stages={"base greedy": {"n": 64, "accuracy": 0.34, "ci95": [0.23, 0.45], "tool_use": 0.0,
                                "tool_calls_per_episode": 0.0}},
        ablation={"hint": {"description": "loss on the whole hint", "accuracy": 0.84, "ci95": [0.75, 0.92],
                           "tool_use": 0.98, "meets_floors": True}},
    )
    figures["floors"] = floors(figures, [0.75, 0.92])
    figures["floors_met"] = True
    report = render_markdown(figures)
    for name in figures["floors"]:
        assert f"| {name} |" in report
    assert "| base greedy | 64 | 34% | [23%, 45%] | 0% | 0.00 |" in report
    assert "uses **hint**" in report and "| 8 | 86% | - |" in report


def test_unknown_loss_settings_and_missing_problem_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loss settings must be some of"):
        RecipeRun(Plan(settings=("everything",)), tmp_path, Console())
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        RecipeRun(Plan(held_out=tmp_path / "nowhere.jsonl"), tmp_path, Console())
