"""Two evaluations of the same problems side by side: the paired difference and its interval.

Where it sits: `startctl eval --out A` and `--out B` (say the base model and START-0, or
greedy and hint-infer) each leave an evaluation.json with every problem's outcome and the
job it came from (`evaluate.py`). `compare(A, B)` pairs the problems by id, takes each
problem's score difference B - A (pass@1: its mean correctness over its samples; and pass@k
at every k both evaluations report), and gives the mean difference with a paired 95%
bootstrap interval (problems resampled, the same draw for A and B), overall and per source
benchmark. Pairing is what makes the interval tight: the problems' own difficulty cancels.

Two evaluations of different problems are refused (`ComparisonError`), with how many
problem ids matched and which are missing on each side.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from recipe import metrics
from recipe.evaluate import percent, read_evaluation
from services.orchestrator import results
from services.orchestrator.report import labelled_figure, markdown_table, png_bytes

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
COMPARE_PNG = "compare.png"
LISTED_IDS = 5  # problem ids named in a refusal, per side


class ComparisonError(ValueError):
    """Two evaluations that cannot be paired; the message says why and what to do."""


def _scores(outcome: dict[str, Any], k: int) -> float:
    return metrics.pass_at_k(outcome["samples"], outcome["correct"], k)


def _common_ks(a: dict[str, Any], b: dict[str, Any]) -> list[int]:
    both = set(a.get("ks") or [1]) & set(b.get("ks") or [1])
    return sorted({1} | {k for k in both if k <= min(a["samples"], b["samples"])})


def _check_same_problems(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The problem ids both evaluated, in A's order; ComparisonError when the sets differ."""
    ids_a = [o["problem_id"] for o in a["outcomes"]]
    ids_b = {o["problem_id"] for o in b["outcomes"]}
    matched = [i for i in ids_a if i in ids_b]
    only_a = [i for i in ids_a if i not in ids_b]
    only_b = sorted(ids_b - set(ids_a))
    if only_a or only_b:
        def named(ids: list[str]) -> str:
            more = f" and {len(ids) - LISTED_IDS} more" if len(ids) > LISTED_IDS else ""
            return ", ".join(ids[:LISTED_IDS]) + more

        raise ComparisonError(
            f"the evaluations are of different problems: {len(matched)} problem ids matched, "
            f"{len(only_a)} only in A ({a['job_id']}){': ' + named(only_a) if only_a else ''}, "
            f"{len(only_b)} only in B ({b['job_id']}){': ' + named(only_b) if only_b else ''}; "
            "evaluate the same problem file with the same --limit and --format in both"
        )
    sha_a, sha_b = a.get("problem_set_sha256"), b.get("problem_set_sha256")
    if sha_a and sha_b and sha_a != sha_b:
        raise ComparisonError(
            f"the evaluations have the same {len(matched)} problem ids but different problems "
            f"(problem-set hashes {sha_a[:12]} and {sha_b[:12]} differ: another file version, or GPQA "
            "shuffled with another --shuffle-seed); evaluate both on the same problem set"
        )
    if not matched:
        raise ComparisonError("neither evaluation scored any problem; nothing to compare")
    return matched


def compare(
    a: dict[str, Any] | str,
    b: dict[str, Any] | str,
    resamples: int = metrics.BOOTSTRAP_RESAMPLES,
    seed: int = metrics.BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Compare evaluation B against A (evaluation dicts, or their out directories / URLs)."""
    sources = {"A": a if isinstance(a, str) else "", "B": b if isinstance(b, str) else ""}
    a = read_evaluation(a) if isinstance(a, str) else a
    b = read_evaluation(b) if isinstance(b, str) else b
    matched = _check_same_problems(a, b)
    by_id_a = {o["problem_id"]: o for o in a["outcomes"]}
    by_id_b = {o["problem_id"]: o for o in b["outcomes"]}
    ks = _common_ks(a, b)
    group_of = {i: by_id_a[i]["source"] for i in matched}
    groups = [("overall", "overall", matched)]
    groups += [(name, "source", [i for i in matched if group_of[i] == name]) for name in sorted(set(group_of.values()))]
    rows = []
    for name, kind, ids in groups:
        entry: dict[str, Any] = {"name": name, "kind": kind, "n": len(ids)}
        for k in ks:
            score_a = np.array([_scores(by_id_a[i], k) for i in ids])
            score_b = np.array([_scores(by_id_b[i], k) for i in ids])
            difference = score_b - score_a
            interval = metrics.bootstrap_interval(difference, resamples, seed)
            entry[f"pass@{k}"] = {
                "a": float(score_a.mean()),
                "b": float(score_b.mean()),
                "difference": float(difference.mean()),
                "ci95": list(interval) if interval else None,
                "b_better": int((difference > 0).sum()),
                "a_better": int((difference < 0).sum()),
                "same": int((difference == 0).sum()),
            }
        rows.append(entry)
    return {
        "a": _side(a, sources["A"]),
        "b": _side(b, sources["B"]),
        "matched_problems": len(matched),
        "ks": ks,
        "score": "per problem: pass@k estimate (pass@1: mean correctness over its samples); difference B - A",
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "confidence": metrics.CONFIDENCE,
            "method": "paired percentile bootstrap of the mean difference; problems resampled with replacement",
        },
        "groups": rows,
    }


def _side(evaluation: dict[str, Any], directory: str) -> dict[str, Any]:
    return {
        "evaluation": directory,
        "job_id": evaluation["job_id"],
        "job_url": evaluation["job_url"],
        "arm": evaluation["arm"],
        "samples": evaluation["samples"],
        "model": evaluation.get("model", ""),
        "problem_set": evaluation["problem_set"],
    }


def _points(value: float) -> str:
    return f"{100 * value:+.1f} pp"


def comparison_table(comparison: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = [
        "group",
        "metric",
        "problems (n)",
        "A",
        "B",
        "difference B - A",
        "95% interval (paired bootstrap)",
        "problems B better",
        "problems A better",
        "problems same",
    ]
    rows = []
    for g in comparison["groups"]:
        for k in comparison["ks"]:
            m = g[f"pass@{k}"]
            interval = "n/a" if not m["ci95"] else f"[{_points(m['ci95'][0])}, {_points(m['ci95'][1])}]"
            rows.append([
                g["name"], f"pass@{k}", g["n"], percent(m["a"]), percent(m["b"]), _points(m["difference"]),
                interval, m["b_better"], m["a_better"], m["same"],
            ])
    return header, rows


def render_markdown(comparison: dict[str, Any], plot: str | None) -> str:
    a, b, boot = comparison["a"], comparison["b"], comparison["bootstrap"]

    def side(s: dict[str, Any]) -> str:
        where = f"{s['evaluation']}, " if s["evaluation"] else ""
        return f"{where}job {s['job_id']} ({s['arm']}, {s['samples']} sample(s) per problem; results {s['job_url']})"

    out = ["# Comparison: B - A", ""]
    out += [
        markdown_table(
            ["figure", "value"],
            [
                ("A", side(a)),
                ("B", side(b)),
                ("model A / B", f"{a['model'] or 'n/a'} / {b['model'] or 'n/a'}"),
                ("problems matched (by problem id)", comparison["matched_problems"]),
                ("per-problem score", comparison["score"]),
                ("interval", f"{100 * boot['confidence']:.0f}% {boot['method']}; {boot['resamples']} resamples, "
                             f"seed {boot['seed']}"),
            ],
        ),
        "",
    ]
    header, rows = comparison_table(comparison)
    numeric = [False, False, True, True, True, True, False, True, True, True]
    out += ["## Paired differences, overall and by source benchmark", "", markdown_table(header, rows, numeric), ""]
    if plot:
        out += [f"![pass@1 difference B - A]({plot})", ""]
    return "\n".join(out)


def draw_plot(comparison: dict[str, Any]) -> bytes:
    """The pass@1 difference B - A per group, with its paired 95% interval."""
    groups = comparison["groups"]
    figure, axes = labelled_figure(
        "pass@1 difference B - A (error bars: 95% paired bootstrap interval)",
        "group (overall, then each source benchmark)",
        "pass@1 difference B - A (percentage points)",
        width=max(5.0, 1.2 * len(groups) + 3),
    )
    names = [g["name"] for g in groups]
    values = [100 * g["pass@1"]["difference"] for g in groups]
    intervals = [g["pass@1"]["ci95"] or [g["pass@1"]["difference"]] * 2 for g in groups]
    lower = [v - 100 * i[0] for v, i in zip(values, intervals, strict=True)]
    upper = [100 * i[1] - v for v, i in zip(values, intervals, strict=True)]
    colors = ["tab:gray" if g["kind"] == "overall" else "tab:blue" for g in groups]
    axes.bar(names, values, yerr=[lower, upper], capsize=4, color=colors, ecolor="black")
    axes.axhline(0, color="black", linewidth=0.8)
    for x, (value, low, high, g) in enumerate(zip(values, lower, upper, groups, strict=True)):
        # Beyond the whisker, on the bar's side of zero, so the label never sits on the error bar.
        y, va = (value + high + 2, "bottom") if value >= 0 else (value - low - 2, "top")
        axes.text(x, y, f"{value:+.1f} pp (n={g['n']})", ha="center", va=va, fontsize=9)
    # Room beyond the longest whisker for its label, on both sides of zero.
    top = max(5.0, *(v + h for v, h in zip(values, upper, strict=True)))
    bottom = min(-5.0, *(v - low for v, low in zip(values, lower, strict=True)))
    axes.set_ylim(bottom - 15, top + 15)
    if len(names) > 4:
        axes.tick_params(axis="x", labelrotation=30)
    return png_bytes(figure)


def write_comparison(comparison: dict[str, Any], out: str) -> dict[str, str]:
    """compare.json, compare.md and compare.png under `out` (a directory or URL)."""
    written = {"json": results.join(out, COMPARE_JSON), "markdown": results.join(out, COMPARE_MD),
               "plot": results.join(out, COMPARE_PNG)}
    results.write_bytes_atomic(written["json"], json.dumps(comparison, indent=1).encode())
    results.write_bytes_atomic(written["plot"], draw_plot(comparison))
    results.write_bytes_atomic(written["markdown"], render_markdown(comparison, COMPARE_PNG).encode())
    return written
