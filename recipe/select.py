"""The Hint-RFT and RFT builders: which episodes of which jobs become training data.

Both read jobs' Parquet results (services/orchestrator/results.py) and write a dataset
directory (recipe/dataset.py). A builder looks at every problem once and records, for each
filter in order, how many problems it dropped, so the card accounts for every problem.

- **Hint-RFT** (START's first stage): from a greedy job and a hint-infer job over the same
  problems, keep the problems where greedy is wrong and hint-infer is right: the hints made
  the difference, and those trajectories teach the model to call the tool by itself.
- **RFT** (the second stage): from a sample job (16 draws per problem by default), keep
  correct responses.

Both drop responses the repetition detector flags (the scoring service's detector and
thresholds, `START_SCORING_REPETITION_*`; a response is dropped when its score reaches
`max_repetition_score`, 1.0 being the detector's own verdict), measured on what the model
wrote (model and tool-code spans: the text training puts loss on). Both keep at most one
trajectory per problem, chosen by a seeded rule that does not depend on the order
episodes were written: among the candidates (those with a tool call first, when
`prefer_tool_calls`), the one whose sha256(`seed:problem_id:episode_id`) is smallest.
The same results and seed always give the same dataset.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recipe.dataset import Dataset, Review, set_review
from services.orchestrator.results import (
    absolute,
    episode_from_row,
    join,
    manifest_exists,
    read_manifest,
    read_results,
)
from services.scoring.repetition import RepetitionThresholds, detect_repetition
from training.convert import sample_of_episode
from training.data import Sample

DONE = "done"
_REPETITION = "_repetition_score"  # a row's detector score, kept in the row once measured


@dataclass(frozen=True)
class SelectionSettings:
    seed: int = 0
    max_repetition_score: float = 1.0
    prefer_tool_calls: bool = False
    repetition: RepetitionThresholds = field(default_factory=RepetitionThresholds)

    def record(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "max_repetition_score": self.max_repetition_score,
            "prefer_tool_calls": self.prefer_tool_calls,
            "repetition_thresholds": self.repetition.__dict__,
        }


@dataclass
class JobSource:
    """One job's results, read for a build."""

    role: str
    url: str
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def arm(self) -> str:
        return self.manifest.get("arm", "")

    def record(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "job_id": self.manifest.get("job_id"),
            "url": self.url,
            "arm": self.arm,
            "episodes_read": len(self.rows),
            "manifest": self.manifest,
        }

    def by_problem(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(self.rows, key=lambda r: (r["problem_index"], r["sample_index"])):
            grouped.setdefault(row["problem_id"], []).append(row)
        return grouped


def job_url(ref: str, results_root: str) -> str:
    """A job's folder: a path or URL as given, else a job id under the results root."""
    if "://" in ref or "/" in ref or Path(ref).exists():
        return absolute(ref)
    return join(absolute(results_root), ref)


def open_job(role: str, ref: str, results_root: str, arms: Sequence[str]) -> JobSource:
    """Read a job's manifest and results; refuse a folder that is not a job, or the wrong arm."""
    url = job_url(ref, results_root)
    if not manifest_exists(url):
        raise ValueError(f"--{role}: no job results at {url} (no manifest.json); pass a job id under --results or"
                         " the job's folder")
    manifest = read_manifest(url)
    if manifest.get("arm") not in arms:
        raise ValueError(f"--{role}: job {manifest.get('job_id')} ran the {manifest.get('arm')!r} arm; this needs"
                         f" {' or '.join(arms)}")
    if manifest.get("status") != "done":
        raise ValueError(f"--{role}: job {manifest.get('job_id')} is {manifest.get('status')!r}, not done: build"
                         " from a finished job (a cancelled one is refused too: its missing problems would"
                         " count as dropped)")
    rows = read_results(url).to_pylist()
    return JobSource(role=role, url=url, manifest=manifest, rows=rows)


class FilterLog:
    """Problems left after each filter, in the order applied."""

    def __init__(self, problems: int) -> None:
        self.left = problems
        self.filters: list[dict[str, Any]] = []

    def apply(self, name: str, rule: str, keep: dict[str, Any], test: Callable[[Any], bool]) -> dict[str, Any]:
        kept = {key: value for key, value in keep.items() if test(value)}
        self.filters.append({"name": name, "rule": rule, "dropped": len(keep) - len(kept), "left": len(kept)})
        self.left = len(kept)
        return kept


def model_text(row: dict[str, Any]) -> str:
    return "".join(s["text"] for s in row["spans"] or [] if s["kind"] in ("model", "tool_code"))


def repetition_score(row: dict[str, Any], settings: SelectionSettings) -> float:
    """The detector's score of a row, measured once: the filter and the trajectory's meta share it."""
    if _REPETITION not in row:
        row[_REPETITION] = detect_repetition(model_text(row), settings.repetition).score
    return row[_REPETITION]


def choose(problem_id: str, candidates: list[dict[str, Any]], settings: SelectionSettings) -> dict[str, Any]:
    """The module docstring's rule: seeded, independent of the order rows were read."""
    pool = candidates
    if settings.prefer_tool_calls and any(r["tool_calls"] > 0 for r in candidates):
        pool = [r for r in candidates if r["tool_calls"] > 0]

    def rank(row: dict[str, Any]) -> str:
        return hashlib.sha256(f"{settings.seed}:{problem_id}:{row['episode_id']}".encode()).hexdigest()

    return min(pool, key=rank)


def trajectory(row: dict[str, Any], source: JobSource, settings: SelectionSettings) -> Sample:
    """The training sample of a result row, with its provenance in `meta`."""
    metadata = source.manifest.get("metadata_columns", [])
    sample = sample_of_episode(episode_from_row(row, metadata))
    sample.meta.update(
        {
            "job_id": row["job_id"],
            "arm": row["arm"],
            "problem_index": row["problem_index"],
            "sample_index": row["sample_index"],
            "source": (row.get("source") if "source" in metadata else None) or source.manifest.get("format", ""),
            "task_type": row["task_type"],
            "reference": row["reference"],
            "extracted": row["extracted"],
            "generated_tokens": row["generated_tokens"],
            "response_chars": len(row["response"] or ""),
            "repetition_score": round(repetition_score(row, settings), 4),
            "max_tool_output_chars": json.loads(row["options"] or "{}").get("max_tool_output_chars", 0),
        }
    )
    set_review(sample, Review())
    return sample


def _correct(row: dict[str, Any]) -> bool:
    return row["status"] == DONE and bool(row["correct"])


def _not_repetitive(settings: SelectionSettings) -> Callable[[dict[str, Any]], bool]:
    return lambda row: repetition_score(row, settings) < settings.max_repetition_score


def build_hint_rft(greedy: JobSource, hint_infer: JobSource, settings: SelectionSettings) -> tuple[list[Sample], dict]:
    """Hint-RFT: the problems greedy gets wrong and hint-infer right; one trajectory each."""
    greedy_by, hinted_by = greedy.by_problem(), hint_infer.by_problem()
    problems = {pid: (greedy_by.get(pid, []), rows) for pid, rows in hinted_by.items()}
    problems.update({pid: (rows, []) for pid, rows in greedy_by.items() if pid not in hinted_by})
    log = FilterLog(len(problems))
    keep = log.apply(
        "in_both_jobs", "the problem has episodes in both jobs, with the same question",
        problems, lambda p: bool(p[0]) and bool(p[1]) and p[0][0]["question"] == p[1][0]["question"],
    )
    keep = log.apply("greedy_finished", "greedy's episodes finished (not failed or cancelled)", keep,
                     lambda p: all(r["status"] == DONE for r in p[0]))
    keep = log.apply("greedy_wrong", "greedy answered wrong", keep, lambda p: not any(r["correct"] for r in p[0]))
    candidates = {pid: [r for r in p[1] if _correct(r)] for pid, p in keep.items()}
    candidates = log.apply("hint_infer_right", "a hint-infer episode finished with the right answer",
                           candidates, bool)
    not_repetitive = _not_repetitive(settings)
    candidates = {pid: [r for r in rows if not_repetitive(r)] for pid, rows in candidates.items()}
    candidates = log.apply("not_repetitive", f"a right response scores below {settings.max_repetition_score} on the"
                           " repetition detector", candidates, bool)
    chosen = [choose(pid, rows, settings) for pid, rows in candidates.items()]
    return _finish(chosen, hint_infer, settings, log)


def build_rft(samples: JobSource, settings: SelectionSettings) -> tuple[list[Sample], dict]:
    """RFT: one correct, non-repetitive response per problem of a sample job."""
    by_problem = samples.by_problem()
    log = FilterLog(len(by_problem))
    finished = {pid: [r for r in rows if r["status"] == DONE] for pid, rows in by_problem.items()}
    finished = log.apply("finished", "at least one sample finished (not failed or cancelled)", finished, bool)
    right = {pid: [r for r in rows if r["correct"]] for pid, rows in finished.items()}
    right = log.apply("correct", "at least one sample answered right", right, bool)
    not_repetitive = _not_repetitive(settings)
    right = {pid: [r for r in rows if not_repetitive(r)] for pid, rows in right.items()}
    right = log.apply("not_repetitive", f"a right sample scores below {settings.max_repetition_score} on the"
                      " repetition detector", right, bool)
    chosen = [choose(pid, rows, settings) for pid, rows in right.items()]
    return _finish(chosen, samples, settings, log)


def _finish(chosen: list[dict[str, Any]], source: JobSource, settings: SelectionSettings,
            log: FilterLog) -> tuple[list[Sample], dict]:
    samples: list[Sample] = []
    no_text = 0
    for row in sorted(chosen, key=lambda r: (r["problem_index"], r["sample_index"])):
        try:
            samples.append(trajectory(row, source, settings))
        except ValueError:
            no_text += 1
    log.filters.append({"name": "has_model_text", "rule": "the response has model text to train on",
                        "dropped": no_text, "left": len(samples)})
    return samples, {"filters": log.filters}


def build(kind: str, sources: list[JobSource], out: str, settings: SelectionSettings, overwrite: bool = False,
          extra: dict[str, Any] | None = None) -> Dataset:
    """Run a builder and write its dataset directory. Refuses to replace a dataset (and its
    review edits) unless `overwrite`."""
    from recipe.dataset import exists

    if exists(out) and not overwrite:
        raise FileExistsError(f"{out} already holds a dataset (and perhaps its review); pass --overwrite to"
                              " replace it, or choose another --out")
    if kind == "hint-rft":
        samples, record = build_hint_rft(sources[0], sources[1], settings)
    elif kind == "rft":
        samples, record = build_rft(sources[0], settings)
    else:
        raise ValueError(f"unknown dataset kind {kind!r}: hint-rft or rft")
    problems = len({r["problem_id"] for s in sources for r in s.rows})
    build_record = {
        "kind": kind,
        "name": f"START {kind} from {', '.join(str(s.manifest.get('job_id')) for s in sources)}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "problems_seen": problems,
        "kept": len(samples),
        "settings": settings.record(),
        "sources": [s.record() for s in sources],
        "filters": record["filters"],
        **(extra or {}),
    }
    dataset = Dataset(url=absolute(out), build=build_record, trajectories=samples)
    dataset.create()
    return dataset
