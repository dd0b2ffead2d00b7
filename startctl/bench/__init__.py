"""`startctl bench NAME`: the project's benchmarks.

Each benchmark measures its figures against a baseline in the same run (these machines are
noisy), prints a table, and with `--json` prints one JSON object as its last line, holding
its figures and `floors_met` (true only when every floor its issue names is met).
Each run also leaves what it printed and its figures in `runs/bench-NAME-latest.{txt,json}`,
to compare against the next run. A benchmark module exposes `run(console, **options) -> dict`;
the options it takes (`--minutes`, `--episodes`...) are declared where it is registered, so
`startctl bench NAME --help` lists them without importing the benchmark.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from startctl.consoles import readable_console
from startctl.processes import stop_children_on_signals

# name -> module under startctl.bench; imported only when run (some load heavy engines).
BENCHMARKS: dict[str, str] = {}

app = typer.Typer(help="Benchmarks; each prints ratios against a baseline measured in the same run.")


@app.command("list")
def list_benchmarks() -> None:
    """List the benchmarks."""
    for name in sorted(BENCHMARKS):
        typer.echo(name)


@dataclass(frozen=True)
class BenchOption:
    """One option of one benchmark: `--NAME` on its command, passed to its `run` as NAME=value.
    Its type is its default's (int, float, str or bool)."""

    default: int | float | str | bool
    help: str


def register(name: str, module: str, options: dict[str, BenchOption] | None = None) -> None:
    BENCHMARKS[name] = module
    options = options or {}

    def _run(json_out: bool, **values: object) -> None:
        # Also written to runs/bench-*-latest.txt: full column names there too.
        console = readable_console(stderr=json_out, record=True)
        # SIGTERM, SIGINT and SIGHUP unwind the benchmark, so the stacks it started stop.
        with stop_children_on_signals():
            figures = importlib.import_module(f"startctl.bench.{module}").run(console, **values)
        save_results(name, console, figures)
        if json_out:
            print(json.dumps(figures))
        if not figures.get("floors_met", False):
            raise typer.Exit(1)

    _run.__doc__ = f"Benchmark: {name}."
    # Typer reads a command's options from its signature: this one's is built from `options`.
    parameters = [
        inspect.Parameter(
            "json_out", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
            default=typer.Option(False, "--json", help="Last line: one JSON object."),
        ),
        *(
            inspect.Parameter(
                key, inspect.Parameter.KEYWORD_ONLY, annotation=type(option.default),
                default=typer.Option(option.default, f"--{key.replace('_', '-')}", help=option.help),
            )
            for key, option in options.items()
        ),
    ]
    _run.__signature__ = inspect.Signature(parameters)
    _run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    app.command(name)(_run)


def save_results(name: str, console: Console, figures: dict) -> None:
    """What the run printed (tables included) and its figures, beside its run folders."""
    runs = Path.cwd() / "runs"
    runs.mkdir(exist_ok=True)
    console.save_text(str(runs / f"bench-{name}-latest.txt"))
    (runs / f"bench-{name}-latest.json").write_text(json.dumps(figures, indent=2) + "\n")


register("episode-throughput", "episode_throughput")
register("hint-infer", "hint_infer")
register("hint-scaling", "hint_scaling")
register("pipeline", "pipeline")
register("recipe", "recipe")
register("routing", "routing")
register("sandbox", "sandbox")
register("scoring", "scoring")
register(
    "soak",
    "soak",
    {
        "minutes": BenchOption(10.0, "How long episodes keep being submitted; then the tail drains."),
        "episodes": BenchOption(200, "Episodes kept in flight (one more is submitted as each finishes)."),
    },
)
register("train", "train")
