"""A job's report: the figures match a hand count, report.md and its plots are written where
the job lives (a directory or an fsspec URL), and an empty or source-less job still reports."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import fsspec
import pyarrow.compute as pc
import pytest

from services.orchestrator import report, results
from start.v1 import common_pb2 as pb

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASK_TYPES = {"math": pb.TASK_TYPE_MATH, "multiple_choice": pb.TASK_TYPE_MULTIPLE_CHOICE, "code": pb.TASK_TYPE_CODE}
STATUSES = {
    "done": pb.EPISODE_STATUS_DONE,
    "failed": pb.EPISODE_STATUS_FAILED,
    "cancelled": pb.EPISODE_STATUS_CANCELLED,
}

# (task type, source or None, status, correct, error, tool calls, hint categories, tokens)
FIXTURE = [
    ("math", "aime", "done", True, "", 2, ["python"], 1000),
    ("math", "aime", "done", True, "", 0, [], 2000),
    ("math", "aime", "done", True, "", 1, ["python", "reflection"], 3000),
    ("math", "aime", "done", False, "", 3, [], 4000),
    ("math", "aime", "failed", False, "step 3 after 3 retries: UNAVAILABLE: sandbox went away", 1, ["python"], 500),
    ("math", "math500", "done", True, "", 0, [], 600),
    ("math", "math500", "done", False, "", 1, ["python"], 700),
    ("multiple_choice", "gpqa", "done", True, "", 0, [], 800),
    ("multiple_choice", "gpqa", "done", False, "", 0, ["reflection"], 900),
    ("multiple_choice", "gpqa", "done", False, "", 2, [], 1100),
    ("multiple_choice", "gpqa", "failed", False, "step 5 after 3 retries: DEADLINE_EXCEEDED: " + "x" * 300, 0, [], 0),
    ("multiple_choice", "gpqa", "cancelled", False, "", 0, [], 0),
    ("code", "livecodebench", "done", True, "", 1, ["python"], 1200),
    ("code", "livecodebench", "done", True, "", 1, [], 1300),
    ("code", "livecodebench", "failed", False, "scoring: grader crashed", 0, [], 100),
    ("code", None, "done", False, "", 0, [], 1400),
]
# The same fixture counted by hand (done episodes only are scored).
BY_TASK_TYPE = {"code": (3, 2), "math": (6, 4), "multiple_choice": (3, 1)}
BY_SOURCE = {"aime": (4, 3), "gpqa": (3, 1), "livecodebench": (2, 2), "math500": (2, 1), "(none)": (1, 0)}


def make_episode(index: int, spec: tuple, job_id: str = "job-1") -> pb.Episode:
    task_type, source, status, correct, error, tool_calls, hint_categories, tokens = spec
    problem = pb.Problem(id=f"p{index}", question=f"question {index}", task_type=TASK_TYPES[task_type])
    if source is not None:
        problem.metadata["source"] = source
    episode = pb.Episode(
        id=f"e{index}",
        problem=problem,
        status=STATUSES[status],
        score=pb.Score(correct=correct),
        tool_calls=tool_calls,
        think_hints=sum(c != "reflection" for c in hint_categories),
        reflection_hints=sum(c == "reflection" for c in hint_categories),
        generated_tokens=tokens,
        created_unix=1000.0 + index,
        finished_unix=1000.0 + index + 10,
        error=error,
        job_id=job_id,
        problem_index=index,
        sample_index=0,
    )
    episode.spans.add(kind=pb.SPAN_KIND_PROMPT, text="question", token_ids=[1, 2, 3])
    episode.spans.add(kind=pb.SPAN_KIND_MODEL, text="thinking", token_ids=[4, 5])
    for category in hint_categories:
        episode.spans.add(kind=pb.SPAN_KIND_HINT, text="a hint", hint_id=f"{category}-1", hint_category=category)
    return episode


def manifest(job_id: str, episodes: int, metadata_columns: list[str], **extra: object) -> dict:
    return {
        "job_id": job_id,
        "arm": "hint-infer",
        "samples": 1,
        "problem_set": "mixed-16",
        "problems": episodes,
        "episodes": episodes,
        "metadata_columns": metadata_columns,
        "model": "micro-model",
        "hint_library": "paper",
        **extra,
    }


def write_job(job_url: str, fixture: list[tuple] = FIXTURE, metadata_columns: list[str] | None = None) -> None:
    columns = ["source"] if metadata_columns is None else metadata_columns
    episodes = [make_episode(i, spec) for i, spec in enumerate(fixture)]
    half = len(episodes) // 2  # two parts, as a job writes them batch by batch
    results.write_part(job_url, 0, episodes[:half], "hint-infer", columns)
    results.write_part(job_url, 1, episodes[half:], "hint-infer", columns)
    results.write_manifest(job_url, manifest("job-1", len(fixture), columns))


def linked_plots(markdown: str) -> list[str]:
    return re.findall(r"\]\((plots/[^)]+\.png)\)", markdown)


def test_summary_counts_accuracy_by_type_and_source_as_counted_by_hand(tmp_path: Path) -> None:
    write_job(str(tmp_path))
    s = report.summarize(results.read_results(str(tmp_path)))

    assert (s["episodes"], s["done"], s["failed"], s["cancelled"], s["correct"]) == (16, 12, 3, 1, 7)
    assert s["accuracy"] == pytest.approx(7 / 12)
    low, high = s["accuracy_interval"]
    assert low < 7 / 12 < high
    assert {r["task_type"]: (r["done"], r["correct"]) for r in s["by_task_type"]} == BY_TASK_TYPE
    assert {r["source"]: (r["done"], r["correct"]) for r in s["by_source"]} == BY_SOURCE
    assert [r["source"] for r in s["by_source"]] == list(BY_SOURCE)  # a missing source sorts last
    gpqa = next(r for r in s["by_source"] if r["source"] == "gpqa")
    assert gpqa["accuracy"] == pytest.approx(1 / 3)

    done_tokens = [t for _, _, status, *_, t in FIXTURE if status == "done"]
    assert s["tokens_per_episode"]["mean"] == pytest.approx(sum(done_tokens) / len(done_tokens))
    assert s["tokens_per_episode"]["p50"] == pytest.approx(1150.0)
    assert s["tool_calls_per_episode"]["histogram"] == [
        {"tool_calls": 0, "episodes": 5},
        {"tool_calls": 1, "episodes": 4},
        {"tool_calls": 2, "episodes": 2},
        {"tool_calls": 3, "episodes": 1},
    ]
    # Done episodes only: the failed one's python hint is not counted.
    assert s["hints_by_category"] == {"python": 4, "reflection": 2}
    assert (s["think_hints"], s["reflection_hints"]) == (4, 2)
    assert s["hints_per_episode"] == pytest.approx(6 / 12)
    assert s["wall_s"] == pytest.approx(25.0)  # first created 1000, last finished 1000 + 15 + 10
    assert s["episodes_per_s"] == pytest.approx(16 / 25)


def test_failures_group_by_kind_with_numbers_normalised() -> None:
    assert report.failure_kind("step 3 after 3 retries: UNAVAILABLE: gone") == "step N after N retries"
    assert report.failure_kind("step 12 after 0 retries: x") == "step N after N retries"
    assert report.failure_kind("") == "(no error message)"
    assert report.failure_kind("no colon here") == "no colon here"


def test_failures_by_kind_in_summary_keep_first_example_truncated(tmp_path: Path) -> None:
    write_job(str(tmp_path))
    failures = report.summarize(results.read_results(str(tmp_path)))["failures_by_kind"]

    assert [(f["kind"], f["episodes"]) for f in failures] == [("step N after N retries", 2), ("scoring", 1)]
    assert failures[0]["example"].startswith("step 3 after 3 retries: UNAVAILABLE")
    table = results.read_results(str(tmp_path))
    only_long = table.filter(pc.starts_with(table["error"], "step 5"))
    long_failure = report.summarize(only_long)["failures_by_kind"][0]
    assert len(long_failure["example"]) == report.EXAMPLE_CHARS


def test_wilson_interval_matches_known_values() -> None:
    assert report.wilson_interval(0, 0) is None
    low, high = report.wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    low, high = report.wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == pytest.approx(1.0)


def test_report_has_full_column_names_and_every_linked_plot_is_a_png(tmp_path: Path) -> None:
    write_job(str(tmp_path))
    url = report.write_report(str(tmp_path))

    assert Path(url) == tmp_path / "report.md"
    text = Path(url).read_text()
    for header in [
        "| task type ",
        "| source ",
        "done episodes",
        "95% interval (Wilson)",
        "| hint category ",
        "| tool calls per episode ",
        "| failure kind ",
        "first example message",
        "mixed-16",
        "micro-model",
        "58.3% (7 / 12)",
    ]:
        assert header in text, header
    assert "| gpqa " in text and "33.3%" in text
    plots = linked_plots(text)
    assert set(plots) == {
        "plots/accuracy_by_task_type.png",
        "plots/accuracy_by_source.png",
        "plots/tool_calls_per_episode.png",
        "plots/tokens_per_episode.png",
        "plots/hints_by_category.png",
        "plots/failures_by_kind.png",
    }
    for plot in plots:
        assert (tmp_path / plot).read_bytes()[:8] == PNG_MAGIC, plot


def test_table_rows_line_up_in_plain_text(tmp_path: Path) -> None:
    write_job(str(tmp_path))
    text = Path(report.write_report(str(tmp_path))).read_text()
    blocks = re.findall(r"(?:^\|.*\|\n)+", text, flags=re.MULTILINE)
    assert blocks
    for block in blocks:
        assert len({len(line) for line in block.splitlines()}) == 1, block


def test_job_without_source_column_reports_no_source_table(tmp_path: Path) -> None:
    write_job(str(tmp_path), metadata_columns=[])
    s = report.summarize(results.read_results(str(tmp_path)))
    assert s["by_source"] is None
    text = Path(report.write_report(str(tmp_path))).read_text()
    assert "Accuracy by source" not in text
    assert "plots/accuracy_by_source.png" not in linked_plots(text)
    assert "plots/accuracy_by_task_type.png" in linked_plots(text)


def test_job_without_failures_says_so_and_draws_no_failures_plot(tmp_path: Path) -> None:
    write_job(str(tmp_path), fixture=[spec for spec in FIXTURE if spec[2] != "failed"])
    text = Path(report.write_report(str(tmp_path))).read_text()
    assert "No failed episodes" in text
    assert "plots/failures_by_kind.png" not in linked_plots(text)


def test_job_cancelled_before_any_episode_finished_reports_that(tmp_path: Path) -> None:
    job = str(tmp_path)
    results.write_manifest(job, manifest("job-empty", 8, ["source"], counts={"cancelled": 8, "written": 0}))

    s = report.summarize(results.read_results(job))
    assert (s["episodes"], s["done"], s["accuracy"], s["accuracy_interval"]) == (0, 0, None, None)
    assert s["by_task_type"] == [] and s["by_source"] == [] and s["failures_by_kind"] == []
    text = Path(report.write_report(job)).read_text()
    assert "No episode finished" in text
    assert "0 of 8 planned" in text
    assert linked_plots(text) == []
    assert report.results_frame(job).empty


def test_memory_url_works_as_job_url() -> None:
    job = f"memory://jobs/{uuid.uuid4().hex}"
    write_job(job)
    url = report.write_report(job)

    fs, path = results.filesystem(url)
    text = fs.cat(path).decode()
    assert "Accuracy by task type" in text
    for plot in linked_plots(text):
        assert fs.cat(results.filesystem(results.join(job, plot))[1])[:8] == PNG_MAGIC
    fsspec.filesystem("memory").rm(results.filesystem(job)[1], recursive=True)


def test_results_frame_has_what_a_person_reads_and_no_spans(tmp_path: Path) -> None:
    write_job(str(tmp_path))
    frame = report.results_frame(str(tmp_path))
    assert len(frame) == len(FIXTURE)
    assert list(frame["problem_index"]) == list(range(len(FIXTURE)))
    assert {"status", "correct", "task_type", "source", "tool_calls", "error", "wall_s"} <= set(frame.columns)
    assert not {"spans", "question", "response"} & set(frame.columns)
    assert frame.loc[0, "source"] == "aime"
    assert frame.loc[0, "wall_s"] == pytest.approx(10.0)
