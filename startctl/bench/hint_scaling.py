"""`startctl bench hint-scaling`: sequential test-time scaling, accuracy and tokens against
the number of hints inserted where the model would end its thinking.

The START paper's sequential scaling: each time the model is about to write `</think>`,
the platform puts a hint there instead, up to K times, so the model thinks (and runs
code) longer. Here K = 0, 1, 2, 4, 8 on the held-out problems of the micro recipe's base
model (models/micro-base, which never saw a hint), through the whole platform (hints at
reflection words off, so only `</think>` hints count; at least K tool calls allowed, so
every hint can be followed). Prints a table and writes it with a plot (`hint_scaling.png`)
and the episodes to the run directory. Floors (issue 13): accuracy rises from K = 0 to
K = 1, and at K = 8 is at most 5 points below K = 1; and every episode finished.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from start.v1 import common_pb2 as pb
from startctl.bench.hint_infer import bench_problems, bench_stack, run_episodes
from startctl.episodes import think_hint_options, write_episodes
from startctl.recipe_run import BASE_MODEL, DATA, K_CURVE_DROP
from startctl.stack import new_run_dir

PROBLEMS = DATA / "eval.jsonl"
HINT_COUNTS = (0, 1, 2, 4, 8)


def row(k: int, episodes: list[pb.Episode], wall_s: float) -> dict:
    n = len(episodes)
    return {
        "think_hints_allowed": k,
        "episodes": n,
        "accuracy": sum(e.score.correct for e in episodes) / n,
        "think_hints_per_episode": sum(e.think_hints for e in episodes) / n,
        "tool_calls_per_episode": sum(e.tool_calls for e in episodes) / n,
        "generated_tokens_per_episode": sum(e.generated_tokens for e in episodes) / n,
        "failed": sum(e.status != pb.EPISODE_STATUS_DONE for e in episodes),
        "wall_s": wall_s,
    }


def run(console: Console) -> dict:
    problems = bench_problems(PROBLEMS)
    run_dir = new_run_dir("bench-hint-scaling")
    console.log(f"{len(problems)} problems from {PROBLEMS.name}, K = {HINT_COUNTS}; runs in {run_dir}")
    rows = []
    with bench_stack(run_dir, True, console, model=BASE_MODEL) as stack:
        for k in HINT_COUNTS:
            episodes, wall = run_episodes(stack, problems, think_hint_options(k), f"k{k}", allow_failed=True)
            write_episodes(episodes, run_dir / f"episodes-k{k}.jsonl")
            rows.append(row(k, episodes, wall))
            console.log(f"K={k}: accuracy {rows[-1]['accuracy']:.0%}, {wall:.1f}s")
    console.print(scaling_table(rows))
    plot(rows, run_dir / "hint_scaling.png")
    (run_dir / "hint_scaling.json").write_text(json.dumps(rows, indent=2))
    console.print(f"table and plot in {run_dir}")
    accuracy = {r["think_hints_allowed"]: r["accuracy"] for r in rows}
    rises = accuracy[1] > accuracy[0]
    holds = accuracy[HINT_COUNTS[-1]] >= accuracy[1] - K_CURVE_DROP
    finished = all(r["failed"] == 0 for r in rows)
    return {"problems": len(problems), "rows": rows, "rises_from_0_to_1": rises, "holds_at_8": holds,
            "floors_met": rises and holds and finished}


def scaling_table(rows: list[dict]) -> Table:
    table = Table(title="sequential test-time scaling: hints at </think>")
    for column in ("K allowed", "accuracy", "</think> hints/ep", "tool calls/ep", "tokens/ep", "failed", "wall s"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"{r['think_hints_allowed']}",
            f"{r['accuracy']:.1%}",
            f"{r['think_hints_per_episode']:.2f}",
            f"{r['tool_calls_per_episode']:.2f}",
            f"{r['generated_tokens_per_episode']:.0f}",
            f"{r['failed']}",
            f"{r['wall_s']:.1f}",
        )
    return table


def plot(rows: list[dict], path) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["think_hints_allowed"] for r in rows]
    fig, acc = plt.subplots(figsize=(5.5, 3.5))
    acc.plot(ks, [100 * r["accuracy"] for r in rows], "o-", color="#a3c", label="accuracy")
    acc.set_xlabel("hints allowed at </think> (K)")
    acc.set_ylabel("accuracy (%)", color="#a3c")
    acc.set_ylim(0, 105)
    acc.set_xticks(ks)
    tokens = acc.twinx()
    tokens.plot(ks, [r["generated_tokens_per_episode"] for r in rows], "s--", color="#555", label="tokens")
    tokens.set_ylabel("generated tokens per episode", color="#555")
    fig.suptitle("Sequential test-time scaling (micro base model)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
