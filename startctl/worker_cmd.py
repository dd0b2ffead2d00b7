"""`startctl worker`: a Celery worker that runs episode steps, in this process.

Settings come from `START_WORKER_*` (see services/orchestrator/celery_app.py), the peers
and Redis from `START_<PEER>_ADDR` and `START_REDIS_URL`; flags win over the environment.
Steps wait on gRPC calls most of the time, so the worker runs them in a thread pool.
"""

from __future__ import annotations

import typer
from pydantic import ValidationError

from services.common.logs import configure_logging
from services.common.settings import PeerAddresses, load_settings, parse_overrides
from services.orchestrator.celery_app import WorkerSettings


def worker(
    concurrency: int | None = typer.Option(None, help="Steps run at once (else START_WORKER_CONCURRENCY, 8)."),
    queue: list[str] = typer.Option([], "--queue", "-Q", help="Queue to consume (repeat); default: all."),
    set_: list[str] = typer.Option([], "--set", help="Any worker setting as key=value; wins over env."),
) -> None:
    """Run a Celery worker that takes episode steps until SIGTERM (warm shutdown)."""
    try:
        overrides = parse_overrides(set_)
        if concurrency is not None:
            overrides["concurrency"] = concurrency
        if queue:
            overrides["queues"] = queue
        settings = load_settings(WorkerSettings, overrides)
        addresses = PeerAddresses()
    except (ValueError, ValidationError) as exc:
        typer.echo(f"startctl worker: bad settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)
    # Imported here: the tasks module connects its app to Redis from the settings.
    from services.orchestrator import tasks

    app = tasks.configure(settings, addresses)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={settings.concurrency}",
            f"--queues={','.join(settings.queues)}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
