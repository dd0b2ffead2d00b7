"""The Hint-RFT and RFT builders over jobs' Parquet results, review edits as files, export.

The results are real Parquet parts written by the controller's own writer
(tests/recipe/recipe_jobs.py); the labels (which episode is right) are set by hand per case,
so each filter's count is known in advance and any filter that miscounts fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_jobs import MICRO_MODEL, episode, plain_spans, problem, tool_spans, write_job

from recipe.dataset import Dataset, review_of
from recipe.export import export
from recipe.review import Change, ReviewError, apply_changes, changes_from_files, check, export_files
from recipe.select import SelectionSettings, build, open_job
from start.v1 import common_pb2 as pb

REPETITIVE = "The same sentence comes again and again in this loop.\n" * 40


def _two_jobs(root: Path) -> tuple[str, str]:
    """Six problems, one per fate:
    0 greedy wrong, hint-infer right        -> kept
    1 greedy right                          -> dropped: greedy_wrong
    2 greedy wrong, hint-infer wrong        -> dropped: hint_infer_right
    3 greedy failed                         -> dropped: greedy_finished
    4 greedy wrong, hint-infer right but repetitive -> dropped: not_repetitive
    5 greedy wrong, hint-infer right        -> kept
    6 only in the hint-infer job            -> dropped: in_both_jobs
    """
    greedy, hinted = [], []
    fates = {0: (False, True), 1: (True, True), 2: (False, False), 3: (None, True), 4: (False, True), 5: (False, True)}
    for i, (greedy_right, hint_right) in fates.items():
        p = problem(i)
        status = pb.EPISODE_STATUS_FAILED if greedy_right is None else pb.EPISODE_STATUS_DONE
        greedy.append(episode("job-g", i, 0, p, plain_spans("1"), bool(greedy_right), status))
        spans = tool_spans(12 + i, 34 + i)
        if i == 4:
            spans[0].text = REPETITIVE
        hinted.append(episode("job-h", i, 0, p, spans, hint_right))
    hinted.append(episode("job-h", 6, 0, problem(6), tool_spans(18, 40), True))
    return write_job(root, "job-g", "greedy", greedy), write_job(root, "job-h", "hint-infer", hinted)


def _build_hint_rft(tmp_path: Path, out: str = "ds") -> Dataset:
    g, h = _two_jobs(tmp_path / "jobs")
    sources = [open_job("greedy", g, "", ("greedy",)), open_job("hint-infer", h, "", ("hint-infer",))]
    return build("hint-rft", sources, str(tmp_path / out), SelectionSettings())


def test_hint_rft_keeps_greedy_wrong_hint_infer_right_and_counts_every_drop(tmp_path: Path) -> None:
    dataset = _build_hint_rft(tmp_path)
    assert [t.meta["problem_id"] for t in dataset.trajectories] == ["mul-0", "mul-5"]
    dropped = {f["name"]: f["dropped"] for f in dataset.build["filters"]}
    assert dropped == {"in_both_jobs": 1, "greedy_finished": 1, "greedy_wrong": 1, "hint_infer_right": 1,
                       "not_repetitive": 1, "has_model_text": 0}
    assert dataset.build["problems_seen"] == 7 == sum(dropped.values()) + len(dataset.trajectories)
    # Spans typed as training reads them: hints and tool outputs carry no loss.
    kinds = [s.type for s in dataset.trajectories[0].spans]
    assert kinds == ["prompt", "model", "hint", "tool_code", "tool_output", "model"]
    meta = dataset.trajectories[0].meta
    assert meta["source"] == "micro" and meta["job_id"] == "job-h" and meta["tool_calls"] == 1
    card = (tmp_path / "ds" / "README.md").read_text()
    header = card.split("---")[1]
    import yaml

    parsed = yaml.safe_load(header)
    assert parsed["start"]["counts"]["kept"] == 2
    assert [f["name"] for f in parsed["start"]["filters"]][:2] == ["in_both_jobs", "greedy_finished"]
    assert "job-g" in card and "job-h" in card and "| greedy_wrong: greedy answered wrong | 1 | 4 |" in card
    # The manifests of both source jobs are kept whole.
    assert [s["manifest"]["job_id"] for s in dataset.build["sources"]] == ["job-g", "job-h"]


def test_a_dataset_is_not_overwritten_without_asking(tmp_path: Path) -> None:
    _build_hint_rft(tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        _build_hint_rft(tmp_path)


def test_rft_keeps_one_right_sample_per_problem_by_a_seeded_order_free_rule(tmp_path: Path) -> None:
    episodes = []
    for i in range(4):
        p = problem(i)
        for s in range(6):
            right = i != 3 and s % 2 == 0  # problem 3: no right sample
            episodes.append(episode("job-s", i, s, p, tool_spans(12 + i, 34 + i), right))
    url = write_job(tmp_path / "jobs", "job-s", "sample", episodes, part_size=5)
    source = open_job("samples", url, "", ("sample",))

    def chosen(seed: int, reverse: bool = False) -> list[str]:
        if reverse:
            source.rows.reverse()
        out = tmp_path / f"rft-{seed}-{reverse}"
        return [t.id for t in build("rft", [source], str(out), SelectionSettings(seed=seed)).trajectories]

    first = chosen(0)
    assert len(first) == 3 and all(int(t.rsplit("-s", 1)[1]) % 2 == 0 for t in first)
    assert chosen(0, reverse=True) == first  # the order parts were read in does not matter
    assert any(chosen(seed) != first for seed in range(1, 6))  # the seed does


def test_builders_refuse_a_wrong_arm_an_unfinished_job_and_a_missing_folder(tmp_path: Path) -> None:
    g, h = _two_jobs(tmp_path / "jobs")
    with pytest.raises(ValueError, match="ran the 'hint-infer' arm"):
        open_job("greedy", h, "", ("greedy",))
    with pytest.raises(ValueError, match="no job results"):
        open_job("greedy", "job-nope", str(tmp_path / "jobs"), ("greedy",))
    running = write_job(tmp_path / "jobs", "job-r", "greedy", [episode("job-r", 0, 0, problem(0), [], False)],
                        status="running")
    with pytest.raises(ValueError, match="not done"):
        open_job("greedy", running, "", ("greedy",))
    # A job id resolves under the results root.
    assert open_job("greedy", "job-g", str(tmp_path / "jobs"), ("greedy",)).url == g


def test_the_cli_builds_from_job_ids_and_ends_with_one_json_object(tmp_path: Path) -> None:
    _two_jobs(tmp_path / "jobs")
    done = subprocess.run(
        [sys.executable, "-m", "startctl", "dataset", "build", "hint-rft", "--greedy", "job-g", "--hint-infer",
         "job-h", "--results", str(tmp_path / "jobs"), "--out", str(tmp_path / "ds"), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["kept"] == 2 and summary["problems_seen"] == 7
    assert "greedy_wrong" in done.stdout  # the filter table, with full names
    # RFT takes the samples of any arm: the greedy job's one right answer here.
    rft = subprocess.run(
        [sys.executable, "-m", "startctl", "dataset", "build", "rft", "--samples", "job-g",
         "--results", str(tmp_path / "jobs"), "--out", str(tmp_path / "ds2"), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert rft.returncode == 0 and json.loads(rft.stdout.strip().splitlines()[-1])["kept"] == 1
    missing = subprocess.run(
        [sys.executable, "-m", "startctl", "dataset", "build", "rft", "--samples", "job-x",
         "--results", str(tmp_path / "jobs"), "--out", str(tmp_path / "ds3")],
        capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 2 and "no job results" in missing.stderr


def test_edits_are_checked_recorded_with_a_diff_and_shown_in_the_card(tmp_path: Path) -> None:
    dataset = _build_hint_rft(tmp_path)
    first, second = (t.id for t in dataset.trajectories)
    with pytest.raises(ReviewError, match="tool output is what the sandbox printed"):
        apply_changes(dataset, [Change(trajectory_id=first, action="edit", span=4, text="\n```output\n1\n```\n")])
    with pytest.raises(ReviewError, match="needs a reason"):
        apply_changes(dataset, [Change(trajectory_id=second, action="drop")])
    assert dataset.edits == []  # all or nothing
    apply_changes(dataset, [
        Change(trajectory_id=first, action="edit", span=1, text="I need the product. Wait,"),
        Change(trajectory_id=second, action="drop", reason="answer right by luck"),
    ], by="ada")
    dataset.save()
    again = Dataset.load(dataset.url)
    assert again.get(first).spans[1].text == "I need the product. Wait,"
    assert review_of(again.get(first)).edited and not review_of(again.get(first)).flags
    assert review_of(again.get(second)).status == "dropped"
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "-I need 12 times 34. Wait," in card and "+I need the product. Wait," in card
    assert "answer right by luck" in card and "by ada" in card


def test_changed_tool_code_is_run_again_or_flagged_until_it_is(tmp_path: Path) -> None:
    dataset = _build_hint_rft(tmp_path)
    first = dataset.trajectories[0].id
    apply_changes(dataset, [Change(trajectory_id=first, action="edit", span=3, text="print(12 * 35)\n```")])
    assert review_of(dataset.get(first)).flags == ["stale output: span 4"]
    assert export(dataset, "start").left_out["flagged: stale output"] == 1
    # A later save with a sandbox runs it: here a runner that evaluates the one expression.
    apply_changes(dataset, [], runner=lambda code: f"{eval(code.removeprefix('print'))}\n")  # noqa: S307
    assert review_of(dataset.get(first)).flags == []
    assert dataset.get(first).spans[4].text == "\n```output\n420\n```\n"
    assert dataset.edits[-1].action == "rerun" and "+420" in dataset.edits[-1].diff


def test_an_edit_that_breaks_a_fence_flags_the_trajectory(tmp_path: Path) -> None:
    dataset = _build_hint_rft(tmp_path)
    first = dataset.trajectories[0].id
    apply_changes(dataset, [Change(trajectory_id=first, action="edit", span=3, text="print(12 * 34)\n")])
    flags = review_of(dataset.get(first)).flags
    assert any("does not follow a closed ```python block" in f for f in flags)
    assert check(dataset.get(first))
    # A doubled closing fence (the platform appends its own after the model's code) is not closed either.
    apply_changes(dataset, [Change(trajectory_id=first, action="edit", span=3, text="print(12 * 34)\n``````")])
    assert any("does not follow a closed" in f for f in review_of(dataset.get(first)).flags)
    # Mended: the code runs again (a runner standing in for the sandbox prints what it would).
    mended = Change(trajectory_id=first, action="edit", span=3, text="print(12 * 34)\n```")
    apply_changes(dataset, [mended], runner=lambda code: "408\n")
    assert review_of(dataset.get(first)).flags == []


def test_review_as_files_round_trips_and_applies_only_what_changed(tmp_path: Path) -> None:
    dataset = _build_hint_rft(tmp_path)
    folder = tmp_path / "review"
    paths = export_files(dataset, folder)
    assert len(paths) == 2 and changes_from_files(dataset, folder) == []
    text = paths[0].read_text().replace("So it is 408.", "So the product is 408.")
    paths[0].write_text(text)
    paths[1].write_text(paths[1].read_text().replace("drop: \n", "drop: duplicate of another\n"))
    changes = changes_from_files(dataset, folder)
    assert [(c.action, c.span) for c in changes] == [("edit", 5), ("drop", None)]
    paths[0].write_text(text.replace("@@@@ span 2 hint @@@@", "@@@@ span 2 model @@@@"))
    with pytest.raises(ReviewError, match="retyped"):
        changes_from_files(dataset, folder)


def test_export_start_trains_with_span_masks_and_messages_render_the_same_text(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from training.data import encode, read_samples

    dataset = _build_hint_rft(tmp_path)
    apply_changes(dataset, [Change(trajectory_id=dataset.trajectories[1].id, action="drop", reason="dup")])
    start = export(dataset, "start")
    assert start.exported == 1 and start.left_out == {"dropped in review": 1}
    (sample,) = read_samples([start.url])
    assert "review" not in sample.meta
    tokenizer = AutoTokenizer.from_pretrained(MICRO_MODEL)
    encoded = encode(sample, tokenizer, "<|im_end|>", 4096)
    trained = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label >= 0])
    assert "print(12 * 34)" in trained and "So it is 408." in trained
    assert "Python can check" not in trained and "```output" not in trained

    messages = export(dataset, "messages", tokenizer_path=MICRO_MODEL)
    (row,) = [json.loads(line) for line in Path(messages.url).read_text().splitlines()]
    rendered = tokenizer.apply_chat_template(row["messages"], tokenize=False)
    prompt_and_response = "".join(s.text for s in sample.spans)
    assert rendered.startswith(prompt_and_response) and rendered[len(prompt_and_response):] == "<|im_end|>\n"


def test_messages_export_refuses_a_prompt_another_template_rendered(tmp_path: Path) -> None:
    dataset = _build_hint_rft(tmp_path)
    dataset.trajectories[0].spans[0].text = "[INST] What is 12 * 34? [/INST]"
    with pytest.raises(ValueError, match="not rendered by this tokenizer's chat template"):
        export(dataset, "messages", tokenizer_path=MICRO_MODEL)


def test_a_dataset_lives_at_an_fsspec_url_as_well_as_in_a_directory(tmp_path: Path) -> None:
    g, h = _two_jobs(tmp_path / "jobs")
    sources = [open_job("greedy", g, "", ("greedy",)), open_job("hint-infer", h, "", ("hint-infer",))]
    url = "memory://datasets/hint-rft"
    build("hint-rft", sources, url, SelectionSettings(), overwrite=True)
    dataset = Dataset.load(url)
    assert dataset.url == url and len(dataset.trajectories) == 2
    apply_changes(dataset, [Change(trajectory_id=dataset.trajectories[0].id, action="drop", reason="test")])
    dataset.save()
    assert export(Dataset.load(url), "start").url == "memory://datasets/hint-rft/export/start.jsonl"
