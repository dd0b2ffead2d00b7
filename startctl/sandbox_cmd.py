"""`startctl sandbox`: run a program in the sandbox from the command line.

`exec` goes through the same domain code as the service (a one-sandbox warm pool, the
same fork server, limits and statuses), without gRPC, so what it reports is what the
service would report.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from services.common.errors import ServiceError
from services.sandbox.executor import Execution, Result, SandboxBroken, Status
from services.sandbox.server import Settings, build_pool
from services.sandbox.validate import LimitPolicy

app = typer.Typer(help="Run code in the gVisor sandbox.", no_args_is_help=True)


async def _run_once(settings: Settings, execution: Execution) -> Result:
    pool = build_pool(settings)
    try:
        await pool.start()
    except SandboxBroken as exc:
        return Result(Status.SANDBOX_ERROR, -1, "", f"sandbox error: {exc}", 0.0)
    try:
        return await pool.execute(execution)
    finally:
        await pool.close()


@app.command("exec")
def exec_(
    file: Path = typer.Argument(..., help="Python file to run ('-' reads stdin)."),
    timeout: float = typer.Option(0.0, "--timeout", help="Wall-time limit in seconds (0 = default)."),
    memory: int = typer.Option(0, "--memory", help="Memory limit in MiB (0 = default)."),
    output_limit: int = typer.Option(0, "--output-limit", help="Output cap in bytes (0 = default)."),
    stdin_file: Path | None = typer.Option(None, "--stdin", help="File given to the program on stdin."),
    json_out: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Run one program under gVisor with limits; prints its status and output."""
    code = sys.stdin.read() if str(file) == "-" else file.read_text()
    stdin = stdin_file.read_text() if stdin_file else ""
    try:
        # One execution: nothing to amortize a preload over, so the sandbox boots without it
        # (START_SANDBOX_PRELOAD still wins when set).
        settings = Settings(pool_size=1, **({} if "START_SANDBOX_PRELOAD" in os.environ else {"preload": ""}))
        policy = LimitPolicy(settings)
        execution = Execution(
            code=policy.code(code),
            stdin=policy.stdin(stdin),
            limits=policy.limits(timeout, memory, output_limit),
        )
        result = asyncio.run(_run_once(settings, execution))
    except (ServiceError, ValidationError) as exc:
        typer.echo(f"startctl sandbox exec: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(2) from exc
    if json_out:
        print(json.dumps(result.as_dict()))
        return
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    typer.echo(f"[{result.status.value}] exit {result.exit_code}, {result.wall_ms:.0f} ms", err=True)
    if result.status != Status.OK:
        raise typer.Exit(1)
