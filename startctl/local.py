"""The embedded default: `startctl up`, `solve` and `demo` on one machine, on loopback.

`demo` is the main job: it starts the whole platform as local processes (Redis, vLLM CPU
with the micro model, hints, gVisor sandbox, scoring, orchestrator, a Celery worker), runs a
problem set greedy and with hint-infer, and shows the difference as a table, a plot and a
transcript with the hints and tool calls marked.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import grpc
import typer
from rich.table import Table

from services.common.settings import DEFAULT_PORTS
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from startctl.consoles import readable_console
from startctl.episodes import (
    OrchestratorClient,
    hint_infer_options,
    print_transcript,
    reachable,
    write_episodes,
)
from startctl.job_cmd import FrontDoor
from startctl.processes import StopRequested, stop_children_on_signals
from startctl.recipe_run import Plan, RecipeRun, follow_jobs, summary_table
from startctl.stack import MICRO_MODEL, ROOT, LocalStack, new_run_dir

DEMO_PROBLEMS = ROOT / "data" / "micro-base" / "eval.jsonl"  # held out from the base model's training
DEMO_MODEL = ROOT / "models" / "micro-base"
console = readable_console()


def _stack(run_dir: Path, ports: dict[str, int] | None = None, model: Path = MICRO_MODEL) -> LocalStack:
    return LocalStack(run_dir=run_dir, ports=dict(ports or {}), model=model, on_status=lambda m: console.log(m))


def up() -> None:
    """Run the whole platform on loopback (default ports) until Ctrl-C, SIGTERM or SIGHUP."""
    ports = {**DEFAULT_PORTS, "redis": 6390}
    run_dir = new_run_dir("up")
    console.log("starting the platform (the engine takes about a minute)")
    with stop_children_on_signals(), _stack(run_dir, ports) as stack:
        table = Table(title="START on loopback")
        table.add_column("service")
        table.add_column("address")
        for name in ("orchestrator", "generation", "hints", "sandbox", "scoring"):
            table.add_row(name, stack.addr(name))
        table.add_row("redis", stack.redis_url)
        table.add_row("logs", str(run_dir / "logs"))
        console.print(table)
        console.print('Try: startctl solve "What is 4821 * 7393?"  (Ctrl-C stops everything)')
        try:
            while True:
                stack.check_alive()
                time.sleep(1)
        except KeyboardInterrupt:
            console.log("stopping")
        except StopRequested:
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                console.log("stopping")
            raise


def solve(
    problem: str = typer.Argument(..., help="The question, as you would ask the model."),
    reference: str = typer.Option("", help="Reference answer, to score the episode."),
    hints: bool = typer.Option(True, help="Inject hints (hint-infer); --no-hints is the greedy baseline."),
    addr: str = typer.Option(
        f"127.0.0.1:{DEFAULT_PORTS['orchestrator']}", help="Orchestrator address (from `startctl up`)."
    ),
    timeout: float = typer.Option(600, help="Seconds to wait for the episode."),
) -> None:
    """Run one episode and print its transcript, hints and tool outputs marked.

    Uses the orchestrator at --addr; when none answers there, starts the platform locally
    for this one episode.
    """
    if not problem.strip():
        raise typer.BadParameter("the problem is empty")
    request = pb.Problem(question=problem, reference=reference, task_type=pb.TASK_TYPE_MATH)
    if reachable(addr):
        episode = _follow(OrchestratorClient(addr), request, hints, timeout)
    else:
        console.log(f"no orchestrator at {addr}: starting the platform locally for this episode")
        with stop_children_on_signals(), _stack(new_run_dir("solve")) as stack:
            episode = _follow(OrchestratorClient(stack.addr("orchestrator")), request, hints, timeout)
    print_transcript(console, episode)
    if episode.status != pb.EPISODE_STATUS_DONE:
        raise typer.Exit(1)


def _follow(client: OrchestratorClient, problem: pb.Problem, hints: bool, timeout: float) -> pb.Episode:
    episode_id = client.submit(problem, hint_infer_options(hints))
    last = None
    with console.status("generating") as status:
        for last in client.watch(episode_id, timeout_s=timeout):
            status.update(
                f"step {last.steps}: {last.generated_tokens} tokens, {last.tool_calls} tool calls, "
                f"{last.think_hints + last.reflection_hints} hints"
            )
    return last if last is not None else client.get(episode_id)


def demo(
    problems: Path = typer.Option(DEMO_PROBLEMS, help="Problem set (JSONL, Parquet, CSV...; docs/jobs.md)."),
    limit: int = typer.Option(0, help="Use only the first N problems (0: all)."),
    timeout: float = typer.Option(0, help="Seconds to wait at most (0: 1200, with --full 3600)."),
    model: Path = typer.Option(DEMO_MODEL, help="Model directory the engine serves (with --full: the base model)."),
    json_out: bool = typer.Option(False, "--json", help="End with one JSON object of the figures."),
    full: bool = typer.Option(False, "--full", help="The whole recipe: Hint-RFT -> START-0, RFT -> START, the K "
                              "curve and the hint-loss ablation (about 22 minutes on 2 cores)."),
) -> None:
    """The main job on the embedded default: greedy vs hint-infer on held-out problems, each
    arm a job whose results are Parquet files and a report; --full runs the whole recipe."""
    if not problems.exists():
        raise typer.BadParameter(f"{problems} does not exist")
    if not (model / "config.json").exists():
        raise typer.BadParameter(f"{model} is not a model directory (no config.json)")
    if full:
        return full_demo(problems, limit, timeout or 3600, model, json_out)
    timeout = timeout or 1200
    run_dir = new_run_dir("demo")
    console.rule("START demo: greedy vs hint-infer on the micro model")
    arms = {"greedy": opb.ARM_GREEDY, "hint-infer": opb.ARM_HINT_INFER}
    with stop_children_on_signals(), _stack(run_dir, model=model) as stack:
        door = FrontDoor(stack.addr("orchestrator"))
        try:
            jobs = {
                arm: door.submit(
                    opb.SubmitJobRequest(
                        problem_set=opb.ProblemSetRef(url=str(problems.resolve())),
                        arm=arm_kind,
                        options=hint_infer_options(arm == "hint-infer"),
                        results_url=str(run_dir / "jobs"),
                        limit=limit,
                    )
                ).job
                for arm, arm_kind in arms.items()
            }
        except grpc.RpcError as exc:
            console.print(f"[red]{exc.code().name}[/]: {exc.details()}")
            raise typer.Exit(2) from exc
        follow_jobs(door, jobs, timeout, console)
        results = {arm: door.episodes(job.id, full=True)[1] for arm, job in jobs.items()}
    summary = summarize(results)
    write_episodes([e for arm in results.values() for e in arm], run_dir / "episodes.jsonl")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_summary(summary, run_dir / "demo.png")
    console.print(arms_table(summary))
    shown = pick_example(results["hint-infer"])
    if shown is not None:
        console.rule("one hint-infer episode")
        print_transcript(console, shown)
    console.print(f"episodes, summary and plot in {run_dir}; each arm's results and report in {run_dir / 'jobs'}")
    if json_out:
        figures = {
            "problems": summary["greedy"]["episodes"],
            "greedy_accuracy": summary["greedy"]["accuracy"],
            "hint_accuracy": summary["hint-infer"]["accuracy"],
            "model": str(model),
            "run_dir": str(run_dir),
        }
        print(json.dumps(figures))
    if all(row["failed"] == row["episodes"] for row in summary.values()):
        raise typer.Exit(1)


def full_demo(problems: Path, limit: int, timeout: float, model: Path, json_out: bool) -> None:
    """`demo --full`: startctl/recipe_run.py, its summary table, the report's place, the figures."""
    run_dir = new_run_dir("recipe")
    console.rule("START recipe on the micro model: base -> START-0 (Hint-RFT) -> START (RFT)")
    plan = Plan(held_out=problems, held_out_limit=limit, base=model, timeout_s=timeout)
    with stop_children_on_signals():
        try:
            figures = RecipeRun(plan, run_dir, console).run()
        except (FileNotFoundError, RuntimeError, TimeoutError) as exc:  # a stage that could not go on
            console.print(f"[red]the recipe stopped[/]: {exc} (what it made so far is in {run_dir})")
            raise typer.Exit(1) from exc
    console.print(summary_table(figures))
    console.print(f"report: {run_dir / 'report.md'} (plots beside it); floors met: {figures['floors_met']}")
    if json_out:
        print(json.dumps({k: v for k, v in figures.items() if k not in ("stages", "training", "timings", "plan")}))


def summarize(results: dict[str, list[pb.Episode]]) -> dict[str, dict[str, float]]:
    summary = {}
    for arm, episodes in results.items():
        n = len(episodes)
        prompt = sum(e.usage.prompt_tokens for e in episodes)
        summary[arm] = {
            "episodes": n,
            "accuracy": sum(e.score.correct for e in episodes) / n,
            "failed": sum(e.status == pb.EPISODE_STATUS_FAILED for e in episodes),
            "with_tool_output": sum(e.tool_calls > 0 for e in episodes) / n,
            "tool_calls_per_episode": sum(e.tool_calls for e in episodes) / n,
            "hints_per_episode": sum(e.think_hints + e.reflection_hints for e in episodes) / n,
            "tokens_per_episode": sum(e.generated_tokens for e in episodes) / n,
            "cached_prompt_share": (sum(e.usage.cached_prompt_tokens for e in episodes) / prompt) if prompt else 0.0,
        }
    return summary


def arms_table(summary: dict[str, dict[str, float]]) -> Table:
    table = Table(title="greedy vs hint-infer", caption="cached: share of prompt tokens served from the prefix cache")
    for column in ("arm", "n", "accuracy", "failed", "tool used", "tools/ep", "hints/ep", "tokens/ep", "cached"):
        table.add_column(column, justify="right")
    for arm, row in summary.items():
        table.add_row(
            arm, f"{row['episodes']}", f"{row['accuracy']:.0%}", f"{row['failed']}",
            f"{row['with_tool_output']:.0%}", f"{row['tool_calls_per_episode']:.2f}",
            f"{row['hints_per_episode']:.2f}", f"{row['tokens_per_episode']:.0f}",
            f"{row['cached_prompt_share']:.0%}",
        )
    return table


def plot_summary(summary: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    bars = axes[0].bar(arms, [summary[a]["accuracy"] for a in arms], color=["#888", "#a3c"])
    axes[0].bar_label(bars, fmt="{:.0%}")
    axes[0].set_ylim(0, 1.1)
    axes[0].set_title("accuracy")
    bars = axes[1].bar(arms, [summary[a]["tool_calls_per_episode"] for a in arms], color=["#888", "#a3c"])
    axes[1].bar_label(bars, fmt="{:.2f}")
    axes[1].set_title("tool calls per episode")
    fig.suptitle("START demo on the micro model")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pick_example(episodes: list[pb.Episode]) -> pb.Episode | None:
    """A correct episode with a hint and a tool call, else any with a tool call, else the first."""
    def has(e: pb.Episode, kind: int) -> bool:
        return any(s.kind == kind for s in e.spans)

    ranked = sorted(
        episodes,
        key=lambda e: (has(e, pb.SPAN_KIND_HINT) and has(e, pb.SPAN_KIND_TOOL_OUTPUT), e.score.correct),
        reverse=True,
    )
    return ranked[0] if ranked else None


def register(app: typer.Typer) -> None:
    """Add the local commands to the top-level app."""
    app.command()(up)
    app.command()(solve)
    app.command()(demo)
