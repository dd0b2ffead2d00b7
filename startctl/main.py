"""`startctl`: the command line of the START platform.

Run services (`serve`, `up`), one episode (`solve`), the main job on the embedded default
(`demo`), one-off sandbox and scoring calls, benchmarks and training.
"""

from __future__ import annotations

import asyncio
import importlib

import typer
from pydantic import ValidationError

from services.common.logs import configure_logging
from services.common.settings import load_settings, parse_overrides
from startctl import bench, dataset_cmd, eval_cmd, job_cmd, local, sandbox_cmd, score_cmd, train_cmd, worker_cmd
from startctl.processes import SERVICES

app = typer.Typer(
    name="startctl",
    help="START: a self-taught reasoner with tools, as a platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox_cmd.app, name="sandbox")
app.add_typer(score_cmd.app, name="score")
app.add_typer(bench.app, name="bench")
app.add_typer(train_cmd.app, name="train")
app.add_typer(job_cmd.app, name="job")
app.add_typer(dataset_cmd.app, name="dataset")
app.add_typer(eval_cmd.app, name="eval")
local.register(app)
app.command()(worker_cmd.worker)


@app.callback()
def _logs_to_stderr() -> None:
    """The platform's own logs from in-process parts (a one-shot sandbox, a scorer) go to
    stderr at WARNING and above, so a command's stdout (`--json`, tables) stays its output
    alone; `serve` and `worker` set their own level from their settings."""
    configure_logging("WARNING")


@app.command()
def serve(
    service: str = typer.Argument(..., help=f"One of: {', '.join(SERVICES)}."),
    port: int | None = typer.Option(None, help="gRPC port (else START_<SERVICE>_PORT)."),
    set_: list[str] = typer.Option([], "--set", help="Any setting as key=value; wins over env."),
) -> None:
    """Run one service as a gRPC server until SIGTERM."""
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{service}.server")
    try:
        overrides = parse_overrides(set_)
        if port is not None:
            overrides["port"] = port
        settings = load_settings(module.Settings, overrides)
    except (ValueError, ValidationError) as exc:
        typer.echo(f"startctl serve {service}: bad settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    asyncio.run(module.serve_forever(settings))


if __name__ == "__main__":
    app()
