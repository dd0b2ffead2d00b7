"""A job's benchmark scores: pass@1, avg@k and pass@k with 95% bootstrap intervals.

Where it sits: after a job (`startctl job`, `SubmitJob`) has written its Parquet results,
`evaluate_job(job_url)` reads them with the job's manifest and returns an evaluation, a
JSON-able dict: overall, per source benchmark (the problem set's `source` column; problems
without one are grouped under the set's format) and per task type. The front door serves it
as `EvaluateJob` (`to_proto`); `startctl eval` saves the reply's JSON and writes the same
Markdown and plots from it here (`write_evaluation`), and `compare.py` pairs two of them.
The metric definitions are in `metrics.py` and docs/evaluation.md.

Conventions, so one number means one thing:
- a problem is scored once all of its samples are written (a running job evaluated with
  `allow_partial`, or a cancelled one, leaves the others out and counts them);
- failed and cancelled episodes are wrong answers in every metric, and counted apart;
- tool calls and tokens per episode are means over done episodes (as in the job's report),
  tokens being the completion tokens the model generated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recipe import metrics
from services.common.errors import InvalidArgument, NotFound
from services.orchestrator import results
from services.orchestrator.report import SOURCE_COLUMN, labelled_figure, markdown_table, png_bytes
from start.v1 import orchestrator_pb2 as opb

EVALUATION_JSON = "evaluation.json"
EVALUATION_MD = "evaluation.md"
PLOTS_DIR = "plots"
FORMAT_VERSION = 1
KINDS = ("overall", "source", "task_type")
FAILED_NOTE = (
    "failed and cancelled episodes count as wrong answers in every metric; they are counted in "
    "the `failed` and `cancelled` columns"
)
_COLUMNS = ["problem_index", "sample_index", "problem_id", "task_type", "status", "correct", "tool_calls",
            "generated_tokens"]
_KIND_PROTO = {
    "overall": opb.EVALUATION_GROUP_KIND_OVERALL,
    "source": opb.EVALUATION_GROUP_KIND_SOURCE,
    "task_type": opb.EVALUATION_GROUP_KIND_TASK_TYPE,
}


def resolve_ks(ks: Sequence[int], samples: int) -> list[int]:
    """The pass@k values to report: those asked (sorted, once each), or 1 and `samples`.
    Raises InvalidArgument on 'ks' for a k outside [1, samples]."""
    bad = [k for k in ks if not 1 <= k <= samples]
    if bad:
        raise InvalidArgument(
            "ks",
            f"k={bad[0]} is outside [1, {samples}]: this job ran {samples} sample(s) per problem, and pass@k "
            f"needs k of them; ask for ks between 1 and {samples}, or none for the default (1 and {samples})",
        )
    return sorted(set(ks)) if ks else sorted({1, samples})


# --- computing -----------------------------------------------------------------------------


def evaluate_job(
    job_url: str,
    ks: Sequence[int] = (),
    resamples: int = metrics.BOOTSTRAP_RESAMPLES,
    seed: int = metrics.BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """The evaluation of the job whose files are at job_url (a directory or fsspec URL)."""
    if not results.manifest_exists(job_url):
        raise NotFound(f"no job at {job_url}: its {results.MANIFEST} is missing (results moved or deleted?)")
    manifest = results.read_manifest(job_url)
    columns = list(_COLUMNS)
    if SOURCE_COLUMN in manifest.get("metadata_columns", []):
        columns.append(results.metadata_column(SOURCE_COLUMN))
    table = results.read_results(job_url, columns=columns)
    return evaluate(table, manifest, ks, job_url=job_url, resamples=resamples, seed=seed)


def evaluate(
    table: pa.Table,
    manifest: dict[str, Any],
    ks: Sequence[int] = (),
    job_url: str = "",
    resamples: int = metrics.BOOTSTRAP_RESAMPLES,
    seed: int = metrics.BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """The evaluation of a job's results table (one row per episode) and its manifest."""
    samples = int(manifest.get("samples") or 1)
    ks = resolve_ks(ks, samples)
    outcomes, incomplete = problem_outcomes(table, manifest)
    frame = _episodes(table, manifest)
    complete_ids = {o["problem_id"] for o in outcomes}
    frame = frame[frame["problem_id"].isin(complete_ids)]
    groups = [_group("overall", "overall", outcomes, frame, samples, ks, resamples, seed)]
    for kind in ("source", "task_type"):
        for name in sorted({o[kind] for o in outcomes}):
            chosen = [o for o in outcomes if o[kind] == name]
            groups.append(_group(name, kind, chosen, frame[frame[kind] == name], samples, ks, resamples, seed))
    return {
        "version": FORMAT_VERSION,
        "job_id": manifest.get("job_id", ""),
        "job_url": job_url,
        "job_status": manifest.get("status", ""),
        "arm": manifest.get("arm", ""),
        "samples": samples,
        "ks": ks,
        "problem_set": manifest.get("problem_set", ""),
        "problem_set_sha256": manifest.get("problem_set_sha256", ""),
        "format": manifest.get("format", ""),
        "skipped_rows": len(manifest.get("skipped_rows") or []),
        "model": manifest.get("model", ""),
        "hint_library": manifest.get("hint_library", ""),
        "problems": int(manifest.get("problems") or 0),
        "evaluated_problems": len(outcomes),
        "incomplete_problems": incomplete,
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "confidence": metrics.CONFIDENCE,
            "method": "percentile bootstrap of the mean over problems; problems resampled with replacement",
        },
        "note": FAILED_NOTE,
        "groups": groups,
        "outcomes": outcomes,
    }


def _episodes(table: pa.Table, manifest: dict[str, Any]) -> pd.DataFrame:
    """One row per (problem, sample) with the columns we score by, `source` filled in."""
    frame = table.to_pandas()
    frame = frame.drop_duplicates(["problem_index", "sample_index"], keep="last")
    column = results.metadata_column(SOURCE_COLUMN)
    fallback = manifest.get("format") or "unknown"
    if column in frame.columns:
        frame["source"] = frame[column].fillna("").astype(str).str.strip().replace("", fallback)
    else:
        frame["source"] = fallback
    frame["correct"] = frame["correct"].fillna(False).astype(bool) & (frame["status"] == "done")
    return frame


def problem_outcomes(table: pa.Table, manifest: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Each problem whose samples are all written, in problem order: id, source, task type,
    samples, correct, failed, cancelled; and how many problems have some samples missing."""
    samples = int(manifest.get("samples") or 1)
    frame = _episodes(table, manifest)
    if frame.empty:
        return [], int(manifest.get("problems") or 0)
    frame["failed"] = frame["status"] == "failed"
    frame["cancelled"] = frame["status"] == "cancelled"
    per = frame.groupby("problem_index", sort=True).agg(
        problem_id=("problem_id", "first"),
        source=("source", "first"),
        task_type=("task_type", "first"),
        samples=("sample_index", "size"),
        correct=("correct", "sum"),
        failed=("failed", "sum"),
        cancelled=("cancelled", "sum"),
    )
    complete = per[per["samples"] >= samples]
    outcomes = [
        {
            "problem_id": str(row.problem_id),
            "source": str(row.source),
            "task_type": str(row.task_type),
            "samples": int(row.samples),
            "correct": int(row.correct),
            "failed": int(row.failed),
            "cancelled": int(row.cancelled),
        }
        for row in complete.itertuples()
    ]
    problems = int(manifest.get("problems") or len(per))
    return outcomes, problems - len(outcomes)


def _metric(scores: np.ndarray, resamples: int, seed: int) -> tuple[float | None, list[float] | None]:
    if len(scores) == 0:
        return None, None
    interval = metrics.bootstrap_interval(scores, resamples, seed)
    return float(scores.mean()), list(interval) if interval else None


def _group(
    name: str,
    kind: str,
    outcomes: list[dict[str, Any]],
    episodes: pd.DataFrame,
    samples: int,
    ks: Sequence[int],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    n = [o["samples"] for o in outcomes]
    c = [o["correct"] for o in outcomes]
    group: dict[str, Any] = {"name": name, "kind": kind, "n": len(outcomes), "samples": samples}
    ci: dict[str, list[float] | None] = {}
    mean_correct = metrics.avg_at_k_scores(n, c) if outcomes else np.array([])
    # pass@1 and avg@k are the same per-problem score (c/n); both names are reported because
    # papers use both (pass@1 for greedy accuracy or the mean over samples, avg@k for the latter).
    for key, scores in (
        ("pass@1", mean_correct),
        ("avg@k", mean_correct),
        ("pass@k", metrics.pass_at_k_scores(n, c, samples) if outcomes else np.array([])),
        *((f"pass@{k}", metrics.pass_at_k_scores(n, c, k) if outcomes else np.array([])) for k in ks),
    ):
        group[key], ci[key] = _metric(scores, resamples, seed)
    group["ci95"] = ci
    done = episodes[episodes["status"] == "done"]
    group["episodes"] = len(episodes)
    group["done"] = len(done)
    group["failed"] = int((episodes["status"] == "failed").sum())
    group["cancelled"] = int((episodes["status"] == "cancelled").sum())
    group["tool_calls_per_episode"] = float(done["tool_calls"].mean()) if len(done) else None
    group["tokens_per_episode"] = float(done["generated_tokens"].mean()) if len(done) else None
    return group


# --- gRPC ------------------------------------------------------------------------------------


def _metric_message(value: float | None, interval: Sequence[float] | None) -> opb.MetricValue | None:
    if value is None:
        return None
    low, high = interval if interval else (value, value)
    return opb.MetricValue(value=value, ci_low=low, ci_high=high)


def to_proto(evaluation: dict[str, Any]) -> opb.Evaluation:
    """The EvaluateJob reply: the figures as fields, and the whole evaluation as JSON text."""
    reply = opb.Evaluation(
        job_id=evaluation["job_id"],
        job_url=evaluation["job_url"],
        arm=evaluation["arm"],
        samples=evaluation["samples"],
        ks=evaluation["ks"],
        problem_set=evaluation["problem_set"],
        format=evaluation["format"],
        skipped_rows=evaluation["skipped_rows"],
        problems=evaluation["problems"],
        incomplete_problems=evaluation["incomplete_problems"],
        bootstrap_resamples=evaluation["bootstrap"]["resamples"],
        bootstrap_seed=evaluation["bootstrap"]["seed"],
        evaluation_json=json.dumps(evaluation, indent=1),
    )
    for g in evaluation["groups"]:
        message = reply.groups.add(
            name=g["name"],
            kind=_KIND_PROTO[g["kind"]],
            n=g["n"],
            samples=g["samples"],
            tool_calls_per_episode=g["tool_calls_per_episode"] or 0.0,
            tokens_per_episode=g["tokens_per_episode"] or 0.0,
            episodes=g["episodes"],
            failed=g["failed"],
            cancelled=g["cancelled"],
        )
        for key, field in (("pass@1", "pass_at_1"), ("avg@k", "avg_at_k"), ("pass@k", "pass_at_k")):
            metric = _metric_message(g[key], g["ci95"][key])
            if metric is not None:
                getattr(message, field).CopyFrom(metric)
        for k in evaluation["ks"]:
            entry = message.pass_at.add(k=k)
            metric = _metric_message(g[f"pass@{k}"], g["ci95"][f"pass@{k}"])
            if metric is not None:
                entry.metric.CopyFrom(metric)
    return reply


# --- files -----------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def with_interval(value: float | None, interval: Sequence[float] | None) -> str:
    """'62.5% [41.0%, 80.0%]': a figure and its 95% interval."""
    if value is None:
        return "n/a"
    if not interval:
        return percent(value)
    return f"{percent(value)} [{percent(interval[0])}, {percent(interval[1])}]"


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def metric_keys(evaluation: dict[str, Any]) -> list[str]:
    """The metric names in a group, in the order tables show them."""
    extra = [f"pass@{k}" for k in evaluation["ks"] if 1 < k < evaluation["samples"]]
    return ["pass@1", "avg@k", *extra, "pass@k"]


def _metric_title(key: str, samples: int) -> str:
    if key == "avg@k":
        return f"avg@{samples} [95% interval]"
    if key == "pass@k":
        return f"pass@{samples} [95% interval]"
    return f"{key} [95% interval]"


def scores_table(evaluation: dict[str, Any], kind: str) -> tuple[list[str], list[list[Any]]]:
    """A table of the overall group and the groups of `kind`: header, rows."""
    keys = metric_keys(evaluation)
    groups = [g for g in evaluation["groups"] if g["kind"] in ("overall", kind)]
    header = [
        {"source": "source benchmark", "task_type": "task type"}[kind],
        "problems (n)",
        "samples per problem (k)",
        *(_metric_title(key, evaluation["samples"]) for key in keys),
    ]
    rows = [[g["name"], g["n"], g["samples"], *(with_interval(g[key], g["ci95"][key]) for key in keys)] for g in groups]
    return header, rows


def work_table(evaluation: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = [
        "group",
        "kind",
        "episodes",
        "done",
        "failed (counted wrong)",
        "cancelled (counted wrong)",
        "tool calls per done episode (mean)",
        "completion tokens per done episode (mean)",
    ]
    rows = [
        [
            g["name"], g["kind"].replace("_", " "), g["episodes"], g["done"], g["failed"], g["cancelled"],
            _number(g["tool_calls_per_episode"], 2), _number(g["tokens_per_episode"], 1),
        ]
        for g in evaluation["groups"]
    ]
    return header, rows


def _header_rows(evaluation: dict[str, Any]) -> list[tuple[str, Any]]:
    b = evaluation["bootstrap"]
    return [
        ("job id", evaluation["job_id"]),
        ("job results", evaluation["job_url"]),
        ("job status when evaluated", evaluation["job_status"]),
        ("arm", evaluation["arm"]),
        ("samples per problem (k)", evaluation["samples"]),
        ("problem set", evaluation["problem_set"]),
        ("format read", evaluation["format"]),
        ("rows skipped as bad", evaluation["skipped_rows"]),
        ("problems in the job", evaluation["problems"]),
        ("problems scored (all samples written)", evaluation["evaluated_problems"]),
        ("problems left out (samples missing)", evaluation["incomplete_problems"]),
        ("model", evaluation["model"]),
        ("hint library", evaluation["hint_library"]),
        (
            "intervals",
            f"{100 * b['confidence']:.0f}% {b['method']}; {b['resamples']} resamples, seed {b['seed']}",
        ),
        ("failed and cancelled episodes", FAILED_NOTE),
    ]


def render_markdown(evaluation: dict[str, Any], plots: dict[str, str]) -> str:
    """evaluation.md; `plots` maps each plot written to its path relative to the file."""
    out = [f"# Evaluation of job {evaluation['job_id']}", ""]
    out += [markdown_table(["figure", "value"], _header_rows(evaluation)), ""]
    out += [
        "pass@1: accuracy of the one sample (greedy), or the mean over the k samples (then equal to avg@k); "
        "pass@k: the unbiased estimator 1 - C(n-c, k)/C(n, k) averaged over problems. "
        "See docs/evaluation.md.",
        "",
    ]
    for kind, title in (("source", "Scores by source benchmark"), ("task_type", "Scores by task type")):
        header, rows = scores_table(evaluation, kind)
        out += [f"## {title}", "", markdown_table(header, rows, numeric=[False] + [True] * (len(header) - 1)), ""]
        name = f"pass_at_1_by_{kind}"
        if name in plots:
            out += [f"![pass@1 by {kind.replace('_', ' ')}]({plots[name]})", ""]
    if "pass_at_k" in plots:
        out += ["## pass@k against k", "", f"![pass@k against k]({plots['pass_at_k']})", ""]
    header, rows = work_table(evaluation)
    out += ["## Work per episode", "", markdown_table(header, rows, numeric=[False, False] + [True] * 6), ""]
    return "\n".join(out)


def _bar_plot(groups: list[dict[str, Any]], key: str, title: str, xlabel: str) -> bytes:
    figure, axes = labelled_figure(
        f"{title}\n(error bars: 95% bootstrap interval over problems)",
        xlabel,
        f"{key} (% of problems)",
        width=max(5.0, 1.2 * len(groups) + 3),
    )
    names = [g["name"] for g in groups]
    values = [100 * (g[key] or 0.0) for g in groups]
    lower = [100 * (g[key] - g["ci95"][key][0]) if g["ci95"][key] else 0.0 for g in groups]
    upper = [100 * (g["ci95"][key][1] - g[key]) if g["ci95"][key] else 0.0 for g in groups]
    colors = ["tab:gray" if g["kind"] == "overall" else "tab:blue" for g in groups]
    axes.bar(names, values, yerr=[lower, upper], capsize=4, color=colors, ecolor="black")
    for x, (value, top, g) in enumerate(zip(values, upper, groups, strict=True)):
        label = f"{value:.1f}% (n={g['n']})" if g["n"] else "no problem scored"
        axes.text(x, value + top + 2, label, ha="center", va="bottom", fontsize=9)
    axes.set_ylim(0, 112)
    axes.set_yticks(range(0, 101, 20))
    if len(names) > 4:
        axes.tick_params(axis="x", labelrotation=30)
    return png_bytes(figure)


def _pass_at_k_plot(evaluation: dict[str, Any]) -> bytes:
    figure, axes = labelled_figure(
        "pass@k against k (band: overall's 95% bootstrap interval over problems)",
        "k (samples drawn per problem)",
        "pass@k (% of problems)",
    )
    ks = evaluation["ks"]
    for g in evaluation["groups"]:
        if g["kind"] not in ("overall", "source") or not g["n"]:
            continue
        values = [100 * g[f"pass@{k}"] for k in ks]
        axes.plot(ks, values, marker="o", label=g["name"], linewidth=2.5 if g["kind"] == "overall" else 1.5)
        if g["kind"] == "overall":  # one band: a band per source would hide the lines
            intervals = [g["ci95"][f"pass@{k}"] for k in ks]
            axes.fill_between(ks, [100 * i[0] for i in intervals], [100 * i[1] for i in intervals], alpha=0.15)
    axes.set_xticks(ks)
    axes.set_ylim(0, 105)
    axes.legend(title="group", fontsize=8)
    return png_bytes(figure)


def draw_plots(evaluation: dict[str, Any]) -> dict[str, bytes]:
    """Every plot the figures allow, by name."""
    plots: dict[str, bytes] = {}
    overall = evaluation["groups"][0]
    if not overall["n"]:
        return plots
    for kind, title, xlabel in (
        ("source", "pass@1 by source benchmark", "source benchmark"),
        ("task_type", "pass@1 by task type", "task type"),
    ):
        groups = [g for g in evaluation["groups"] if g["kind"] in ("overall", kind)]
        plots[f"pass_at_1_by_{kind}"] = _bar_plot(groups, "pass@1", title, xlabel)
    if len(evaluation["ks"]) > 1:
        plots["pass_at_k"] = _pass_at_k_plot(evaluation)
    return plots


def write_evaluation(evaluation: dict[str, Any], out: str, evaluation_json: str | None = None) -> dict[str, str]:
    """Write evaluation.json (`evaluation_json` as given, e.g. an EvaluateJob reply's, else
    the dict's JSON), evaluation.md and plots/*.png under `out` (a directory or fsspec URL);
    returns what was written, by name."""
    written = {"json": results.join(out, EVALUATION_JSON), "markdown": results.join(out, EVALUATION_MD)}
    text = evaluation_json if evaluation_json is not None else json.dumps(evaluation, indent=1)
    results.write_bytes_atomic(written["json"], text.encode())
    links = {}
    for name, png in draw_plots(evaluation).items():
        relative = f"{PLOTS_DIR}/{name}.png"
        results.write_bytes_atomic(results.join(out, relative), png)
        links[name] = relative
        written[name] = results.join(out, relative)
    results.write_bytes_atomic(written["markdown"], render_markdown(evaluation, links).encode())
    return written


def read_evaluation(out: str) -> dict[str, Any]:
    """The evaluation.json under `out` (an eval out directory or URL)."""
    fs, path = results.filesystem(results.join(out, EVALUATION_JSON))
    if not fs.exists(path):
        raise FileNotFoundError(f"{out} holds no {EVALUATION_JSON}: not an evaluation's out directory (eval --out)")
    with fs.open(path, "rb") as handle:
        evaluation = json.loads(handle.read())
    missing = [key for key in ("job_url", "outcomes", "groups") if key not in evaluation]
    if missing:
        where = results.join(out, EVALUATION_JSON)
        raise ValueError(f"{where} lacks {', '.join(missing)}: not written by startctl eval")
    return evaluation


def summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The one JSON object `startctl eval --json` ends with: per source benchmark and overall,
    n, pass@1, avg@k, pass@k and their 95% intervals (k: `samples`)."""

    def brief(g: dict[str, Any]) -> dict[str, Any]:
        keys = ("pass@1", "avg@k", "pass@k")
        return {"n": g["n"], **{key: g[key] for key in keys}, "ci95": {key: g["ci95"][key] for key in keys}}

    groups = evaluation["groups"]
    return {
        "job_id": evaluation["job_id"],
        "arm": evaluation["arm"],
        "samples": evaluation["samples"],
        "format": evaluation["format"],
        "skipped_rows": evaluation["skipped_rows"],
        "overall": brief(groups[0]),
        "by_source": {g["name"]: brief(g) for g in groups if g["kind"] == "source"},
        "by_task_type": {g["name"]: brief(g) for g in groups if g["kind"] == "task_type"},
    }
