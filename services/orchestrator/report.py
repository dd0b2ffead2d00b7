"""A job's report: what a finished (or cancelled) job's results say, for people and for tools.

Where it sits: a job writes one results row per finished episode (`results.py`); when it
ends, `write_report(job_url)` reads the manifest and every part and writes, beside them,

    report.md            header figures, tables, links to the plots (plain-text readable)
    plots/*.png          accuracy by task type and source, tool calls, tokens, hints, failures

`summarize(table)` returns the same figures as a JSON-able dict (for tests and `--json`);
`results_frame(job_url)` is the per-episode table a person reads (`startctl job results`).

Conventions, so the numbers mean one thing everywhere:
- accuracy is correct / done episodes (failed and cancelled ones are counted, not scored),
  with a 95% Wilson interval;
- per-episode work (tokens, tool calls, hints) is over done episodes, since failed and
  cancelled ones stopped early and would pull the means down;
- tokens are `generated_tokens`: the completion tokens the episode's model produced (the
  server's usage count, or the returned token ids where a server gave none).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from services.orchestrator import results

REPORT = "report.md"
PLOTS_DIR = "plots"
SOURCE_COLUMN = "source"  # the problem-set column that names the source benchmark
Z_95 = 1.959963984540054  # two-sided 95% normal quantile, for the Wilson interval
EXAMPLE_CHARS = 200  # a failure kind's example message is cut to this many characters

# What `results_frame` shows, in this order (metadata columns go after `task_type`); spans,
# token ids, the question, the response and the tests stay in the Parquet files.
_FRAME_COLUMNS = [
    "problem_index",
    "sample_index",
    "episode_id",
    "problem_id",
    "task_type",
    "status",
    "correct",
    "extracted",
    "reference",
    "steps",
    "tool_calls",
    "think_hints",
    "reflection_hints",
    "generated_tokens",
    "prompt_tokens",
    "created_unix",
    "finished_unix",
    "generation_s",
    "tool_s",
    "error",
]


# --- figures -------------------------------------------------------------------------------


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of correct/n (None when n is 0): unlike the normal
    approximation it stays inside [0, 1] and is honest at 0/n and n/n."""
    if n <= 0:
        return None
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def failure_kind(error: str | None) -> str:
    """The kind of a failure: the error's text before its first ':', with every number
    replaced by N, so "step 3 after 3 retries: UNAVAILABLE: ..." and "step 5 after 3
    retries: ..." group together as "step N after N retries"."""
    head = (error or "").split(":", 1)[0]
    kind = re.sub(r"\s+", " ", re.sub(r"\d+", "N", head)).strip()
    return kind or "(no error message)"


def _accuracy_row(group: str, name: str, done: int, correct: int) -> dict[str, Any]:
    interval = wilson_interval(correct, done)
    return {
        group: name,
        "done": done,
        "correct": correct,
        "accuracy": correct / done if done else None,
        "interval": list(interval) if interval else None,
    }


def _accuracy_by(frame: pd.DataFrame, column: str, group: str) -> list[dict[str, Any]]:
    """Accuracy per value of `column` over done episodes; a group with no done episode is
    still listed (n 0), so a task type whose episodes all failed does not vanish."""
    labels = frame[column].fillna("(none)").replace("", "(none)")
    rows = []
    for name in sorted(labels.unique(), key=lambda name: (name == "(none)", name)):
        members = frame[labels == name]
        done = members[members["status"] == "done"]
        rows.append(_accuracy_row(group, str(name), len(done), int(done["correct"].fillna(False).sum())))
    return rows


def _distribution(values: pd.Series) -> dict[str, float] | None:
    if values.empty:
        return None
    array = values.to_numpy(dtype=float)
    return {
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "max": float(array.max()),
    }


def _hints_by_category(spans: pa.ChunkedArray) -> dict[str, int]:
    """Hint spans counted by category, read column-wise so token ids never become Python."""
    flat = pc.list_flatten(spans)
    if len(flat) == 0:
        return {}
    hints = pc.filter(flat, pc.equal(pc.struct_field(flat, "kind"), "hint"))
    counts: dict[str, int] = {}
    for category in pc.struct_field(hints, "hint_category").to_pylist():
        name = category or "(none)"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _failures_by_kind(failed: pd.DataFrame) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for error in failed["error"].fillna(""):
        kind = failure_kind(error)
        entry = groups.setdefault(kind, {"kind": kind, "episodes": 0, "example": _truncate(error, EXAMPLE_CHARS)})
        entry["episodes"] += 1
    return sorted(groups.values(), key=lambda entry: (-entry["episodes"], entry["kind"]))


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalars(table: pa.Table) -> pd.DataFrame:
    """The table without its list columns (spans carry every token id)."""
    keep = [name for name in table.column_names if not pa.types.is_list(table.schema.field(name).type)]
    return table.select(keep).to_pandas()


def summarize(table: pa.Table) -> dict[str, Any]:
    """The report's figures, JSON-able. Episode counts are over every row; accuracy over done
    episodes; per-episode work (tokens, tool calls, hints) over done episodes."""
    frame = _scalars(table)
    status = frame["status"]
    done = frame[status == "done"]
    failed = frame[status == "failed"]
    correct = int(done["correct"].fillna(False).sum())
    interval = wilson_interval(correct, len(done))

    # 0 is "never set": an episode cancelled before it started has no created time.
    created = frame["created_unix"][frame["created_unix"] > 0]
    finished = frame["finished_unix"][frame["finished_unix"] > 0]
    wall_s = float(finished.max() - created.min()) if len(created) and len(finished) else None
    episodes_per_s = len(frame) / wall_s if wall_s and wall_s > 0 else None

    tool_calls = done["tool_calls"].astype(int)
    histogram = tool_calls.value_counts().sort_index()
    hints = done["think_hints"].astype(int) + done["reflection_hints"].astype(int)
    done_spans = table.filter(pc.equal(table["status"], "done"))["spans"]

    return {
        "episodes": len(frame),
        "done": len(done),
        "failed": len(failed),
        "cancelled": int((status == "cancelled").sum()),
        "correct": correct,
        "accuracy": correct / len(done) if len(done) else None,
        "accuracy_interval": list(interval) if interval else None,
        "by_task_type": _accuracy_by(frame, "task_type", "task_type"),
        "by_source": _accuracy_by(frame, SOURCE_COLUMN, "source") if SOURCE_COLUMN in frame.columns else None,
        "tokens_per_episode": _distribution(done["generated_tokens"]),
        "tool_calls_per_episode": {
            "mean": float(tool_calls.mean()) if len(tool_calls) else None,
            "histogram": [{"tool_calls": int(k), "episodes": int(v)} for k, v in histogram.items()],
        },
        "hints_per_episode": float(hints.mean()) if len(hints) else None,
        "think_hints": int(done["think_hints"].sum()),
        "reflection_hints": int(done["reflection_hints"].sum()),
        "hints_by_category": _hints_by_category(done_spans),
        "failures_by_kind": _failures_by_kind(failed),
        "first_created_unix": float(created.min()) if len(created) else None,
        "last_finished_unix": float(finished.max()) if len(finished) else None,
        "wall_s": wall_s,
        "episodes_per_s": episodes_per_s,
    }


# --- Markdown ------------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] = ()) -> str:
    """A pipe table padded so its columns line up in plain text too; numeric columns are
    right-aligned. (pandas' to_markdown would need tabulate, one more dependency.)"""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(header))]
    right = [bool(numeric[i]) if i < len(numeric) else False for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if r else "-" * w for w, r in zip(widths, right, strict=True))
    return "\n".join([line(cells[0]), rule + " |", *(line(row) for row in cells[1:])])


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _interval(interval: Sequence[float] | None) -> str:
    return "n/a" if not interval else f"{100 * interval[0]:.1f}% to {100 * interval[1]:.1f}%"


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _accuracy_table(rows: list[dict[str, Any]], group: str, title: str) -> str:
    return markdown_table(
        [title, "done episodes", "correct", "accuracy", "95% interval (Wilson)"],
        [
            [row[group], row["done"], row["correct"], _percent(row["accuracy"]), _interval(row["interval"])]
            for row in rows
        ],
        numeric=[False, True, True, True, False],
    )


def _header(manifest: dict[str, Any], s: dict[str, Any]) -> list[str]:
    tokens = s["tokens_per_episode"]
    rows = [
        ("job id", manifest.get("job_id", "")),
        ("arm", manifest.get("arm", "")),
        ("samples per problem", manifest.get("samples", "")),
        ("problem set", f"{manifest.get('problem_set', '')} ({manifest.get('problems', '?')} problems)"),
        ("model", manifest.get("model", "")),
        ("hint library", manifest.get("hint_library", "")),
        ("episodes finished", f"{s['episodes']} of {manifest.get('episodes', '?')} planned"),
        ("done / failed / cancelled", f"{s['done']} / {s['failed']} / {s['cancelled']}"),
        (
            "accuracy (correct / done)",
            f"{_percent(s['accuracy'])} ({s['correct']} / {s['done']}), "
            f"95% interval (Wilson) {_interval(s['accuracy_interval'])}",
        ),
        (
            "completion tokens per done episode",
            "n/a"
            if tokens is None
            else f"mean {_number(tokens['mean'])}, p50 {_number(tokens['p50'], 0)}, p90 {_number(tokens['p90'], 0)}",
        ),
        ("tool calls per done episode (mean)", _number(s["tool_calls_per_episode"]["mean"], 2)),
        ("hints per done episode (think + reflection, mean)", _number(s["hints_per_episode"], 2)),
        ("wall time (first created to last finished)", "n/a" if s["wall_s"] is None else f"{s['wall_s']:,.1f} s"),
        ("episodes per second", _number(s["episodes_per_s"], 3)),
    ]
    return [markdown_table(["figure", "value"], rows)]


def render_markdown(manifest: dict[str, Any], s: dict[str, Any], plots: dict[str, str]) -> str:
    """The report's text; `plots` maps each plot written to its relative path."""
    out = [f"# Job {manifest.get('job_id', '')}", ""]
    if s["episodes"] == 0:
        counts = manifest.get("counts") or {}
        out += [
            "No episode finished: the job ended (most likely cancelled) before any result was written,",
            "so there is nothing to score or plot.",
            "",
        ]
        if counts:
            out += [markdown_table(["count (manifest)", "episodes"], sorted(counts.items()), numeric=[False, True]), ""]
    out += [*_header(manifest, s), ""]
    if s["episodes"] == 0:
        return "\n".join(out)

    out += ["## Accuracy by task type", "", _accuracy_table(s["by_task_type"], "task_type", "task type"), ""]
    out += _plot_link(plots, "accuracy_by_task_type", "Accuracy by task type")
    if s["by_source"] is not None:
        out += ["## Accuracy by source benchmark", "", _accuracy_table(s["by_source"], "source", "source"), ""]
        out += _plot_link(plots, "accuracy_by_source", "Accuracy by source benchmark")

    out += ["## Where hints went (done episodes)", ""]
    out += [
        markdown_table(
            ["hint kind", "hints"],
            [["think hints", s["think_hints"]], ["reflection hints", s["reflection_hints"]]],
            numeric=[False, True],
        ),
        "",
    ]
    if s["hints_by_category"]:
        out += [
            markdown_table(
                ["hint category", "hint spans"], list(s["hints_by_category"].items()), numeric=[False, True]
            ),
            "",
        ]
        out += _plot_link(plots, "hints_by_category", "Hint spans by category")
    else:
        out += ["No hint spans in done episodes.", ""]

    out += ["## Tool calls per episode (done episodes)", ""]
    histogram = s["tool_calls_per_episode"]["histogram"]
    if histogram:
        out += [
            markdown_table(
                ["tool calls per episode", "episodes"],
                [[h["tool_calls"], h["episodes"]] for h in histogram],
                numeric=[True, True],
            ),
            "",
        ]
        out += _plot_link(plots, "tool_calls_per_episode", "Tool calls per episode")
    else:
        out += ["No done episodes.", ""]

    out += ["## Completion tokens per episode (done episodes)", ""]
    if s["tokens_per_episode"]:
        t = s["tokens_per_episode"]
        out += [
            markdown_table(
                ["mean", "p50", "p90", "max"],
                [[_number(t["mean"]), _number(t["p50"], 0), _number(t["p90"], 0), _number(t["max"], 0)]],
                numeric=[True] * 4,
            ),
            "",
        ]
    out += _plot_link(plots, "tokens_per_episode", "Completion tokens per episode") or ["No done episodes.", ""]

    out += ["## Failures by kind", ""]
    if s["failures_by_kind"]:
        out += [
            markdown_table(
                ["failure kind", "failed episodes", "first example message"],
                [[f["kind"], f["episodes"], f["example"]] for f in s["failures_by_kind"]],
                numeric=[False, True, False],
            ),
            "",
        ]
        out += _plot_link(plots, "failures_by_kind", "Failed episodes by kind")
    else:
        out += ["No failed episodes (no failures plot).", ""]
    return "\n".join(out)


def _plot_link(plots: dict[str, str], name: str, title: str) -> list[str]:
    return [f"![{title}]({plots[name]})", ""] if name in plots else []


# --- plots ---------------------------------------------------------------------------------


def labelled_figure(
    title: str, xlabel: str, ylabel: str, width: float = 7.0, height: float = 4.2, horizontal: bool = False
) -> tuple[Figure, Any]:
    """A titled, labelled figure; `horizontal`: the counts run along x (horizontal bars)."""
    # A Figure of its own, not pyplot: no global state, so reports can be drawn in threads.
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(axis="x" if horizontal else "y", alpha=0.3)
    axes.set_axisbelow(True)
    # Counts are whole episodes and spans: no 0.25-episode ticks.
    (axes.xaxis if horizontal else axes.yaxis).set_major_locator(MaxNLocator(integer=True))
    return figure, axes


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _accuracy_plot(rows: list[dict[str, Any]], group: str, title: str, xlabel: str) -> bytes:
    figure, axes = labelled_figure(
        f"{title}\n(error bars: 95% Wilson interval)",
        xlabel,
        "accuracy (% of done episodes)",
        width=max(5.0, 1.1 * len(rows) + 3),
    )
    names = [row[group] for row in rows]
    values = [100 * (row["accuracy"] or 0.0) for row in rows]
    lower = [100 * (row["accuracy"] - row["interval"][0]) if row["interval"] else 0.0 for row in rows]
    upper = [100 * (row["interval"][1] - row["accuracy"]) if row["interval"] else 0.0 for row in rows]
    axes.bar(names, values, yerr=[lower, upper], capsize=4, color="tab:blue", ecolor="black")
    for x, (value, top, row) in enumerate(zip(values, upper, rows, strict=True)):
        # Above the whisker, so the label never sits on the error bar or on an empty bar.
        label = f"{value:.1f}% ({row['correct']}/{row['done']})" if row["done"] else "no done episodes"
        axes.text(x, value + top + 2, label, ha="center", va="bottom", fontsize=9)
    axes.set_ylim(0, 112)
    axes.set_yticks(range(0, 101, 20))
    return png_bytes(figure)


def _tool_calls_plot(histogram: list[dict[str, int]]) -> bytes:
    figure, axes = labelled_figure("Tool calls per episode (done episodes)", "tool calls per episode", "episodes")
    bars = axes.bar([h["tool_calls"] for h in histogram], [h["episodes"] for h in histogram], color="tab:green")
    axes.bar_label(bars, fontsize=9)
    axes.set_xticks(range(0, max(h["tool_calls"] for h in histogram) + 1))
    axes.margins(y=0.12)
    return png_bytes(figure)


def _tokens_plot(tokens: pd.Series) -> bytes:
    figure, axes = labelled_figure(
        "Completion tokens per episode (done episodes)", "completion tokens per episode", "episodes"
    )
    bins = min(20, max(1, tokens.nunique()))
    _, _, patches = axes.hist(tokens.to_numpy(dtype=float), bins=bins, color="tab:purple", edgecolor="white")
    axes.bar_label(patches, labels=[f"{int(p.get_height())}" if p.get_height() else "" for p in patches], fontsize=8)
    axes.margins(y=0.12)
    return png_bytes(figure)


def _hints_plot(by_category: dict[str, int]) -> bytes:
    names = list(by_category)
    figure, axes = labelled_figure(
        "Hint spans by category (done episodes)", "hint category", "hint spans", width=max(5.0, 0.9 * len(names) + 3)
    )
    bars = axes.bar(names, list(by_category.values()), color="tab:orange")
    axes.bar_label(bars, fontsize=9)
    axes.margins(y=0.12)
    if len(names) > 4:
        axes.tick_params(axis="x", labelrotation=30)
    return png_bytes(figure)


def _failures_plot(failures: list[dict[str, Any]]) -> bytes:
    ordered = list(reversed(failures))  # largest at the top
    figure, axes = labelled_figure(
        "Failed episodes by kind",
        "failed episodes",
        "failure kind",
        width=8.0,
        height=max(2.5, 0.5 * len(ordered) + 1.5),
        horizontal=True,
    )
    bars = axes.barh([_truncate(f["kind"], 50) for f in ordered], [f["episodes"] for f in ordered], color="tab:red")
    axes.bar_label(bars, padding=3, fontsize=9)
    axes.margins(x=0.12)
    return png_bytes(figure)


def draw_plots(table: pa.Table, s: dict[str, Any]) -> dict[str, bytes]:
    """Every plot the figures allow, by name; a plot with nothing to show is left out."""
    plots: dict[str, bytes] = {}
    if s["done"]:  # with no done episode there is no accuracy to draw
        plots["accuracy_by_task_type"] = _accuracy_plot(
            s["by_task_type"], "task_type", "Accuracy by task type", "task type"
        )
    if s["done"] and s["by_source"]:
        plots["accuracy_by_source"] = _accuracy_plot(
            s["by_source"], "source", "Accuracy by source benchmark", "source benchmark"
        )
    if s["tool_calls_per_episode"]["histogram"]:
        plots["tool_calls_per_episode"] = _tool_calls_plot(s["tool_calls_per_episode"]["histogram"])
    if s["done"]:
        done = table.filter(pc.equal(table["status"], "done"))
        plots["tokens_per_episode"] = _tokens_plot(done["generated_tokens"].to_pandas())
    if s["hints_by_category"]:
        plots["hints_by_category"] = _hints_plot(s["hints_by_category"])
    if s["failures_by_kind"]:
        plots["failures_by_kind"] = _failures_plot(s["failures_by_kind"])
    return plots


# --- entry points --------------------------------------------------------------------------


def write_report(job_url: str) -> str:
    """Read the job's manifest and results, write `report.md` and `plots/*.png` under
    job_url (a directory or an fsspec URL), and return the report's URL."""
    manifest = results.read_manifest(job_url)
    table = results.read_results(job_url)
    figures = summarize(table)
    links = {}
    for name, png in draw_plots(table, figures).items():
        relative = f"{PLOTS_DIR}/{name}.png"
        results.write_bytes_atomic(results.join(job_url, relative), png)
        links[name] = relative
    url = results.join(job_url, REPORT)
    results.write_bytes_atomic(url, render_markdown(manifest, figures, links).encode())
    return url


def results_frame(job_url: str) -> pd.DataFrame:
    """One row per episode with the columns a person looks at (no spans, token ids, question
    or response), sorted by problem and sample, plus `wall_s` (finished minus created)."""
    metadata = [results.metadata_column(c) for c in results.read_manifest(job_url).get("metadata_columns", [])]
    at = _FRAME_COLUMNS.index("task_type") + 1
    columns = [*_FRAME_COLUMNS[:at], *metadata, *_FRAME_COLUMNS[at:]]
    frame = results.read_results(job_url, columns=columns).select(columns).to_pandas()
    frame["wall_s"] = frame["finished_unix"] - frame["created_unix"]
    return frame.sort_values(["problem_index", "sample_index"], kind="stable").reset_index(drop=True)
