"""`startctl worker`: a Celery worker that runs episode steps, in this process.

Settings come from `START_WORKER_*` (see services/orchestrator/celery_app.py), the peers
and Redis from `START_<PEER>_ADDR` and `START_REDIS_URL`; flags win over the environment.
Steps wait on gRPC calls most of the time, so the worker runs them in a thread pool.

The Celery worker runs in a child process that this command restarts when it exits on an
error (Celery's consumer can die on a broker outage it fails to recover from: broker.py),
with back-off, as a Kubernetes container would be restarted, but in a second and without
a crash loop's growing delays. SIGTERM and SIGINT are passed on (warm shutdown: running
steps finish); the child dies with this process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import typer
from pydantic import ValidationError

from services.common.logs import configure_logging, get_logger
from services.common.settings import PeerAddresses, load_settings, parse_overrides
from services.orchestrator.celery_app import WorkerSettings
from startctl.processes import die_with_parent


def worker(
    concurrency: int | None = typer.Option(None, help="Steps run at once (else START_WORKER_CONCURRENCY, 8)."),
    queue: list[str] = typer.Option([], "--queue", "-Q", help="Queue to consume (repeat); default: all."),
    set_: list[str] = typer.Option([], "--set", help="Any worker setting as key=value; wins over env."),
    supervise: bool = typer.Option(True, help="Restart the Celery worker when it exits on an error.", hidden=True),
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
    if supervise:
        raise typer.Exit(supervise_worker([sys.executable, "-m", "startctl", *sys.argv[1:], "--no-supervise"]))
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


def supervise_worker(argv: list[str]) -> int:
    """Run argv, restarting it when it exits on its own with an error; its last exit code."""
    log = get_logger("worker.supervisor")
    stopping = False
    child: subprocess.Popen | None = None

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    delay = 1.0
    while True:
        started = time.monotonic()
        # SIGKILL: the supervisor is gone, and the worker's steps are acknowledged late,
        # so a killed worker loses nothing.
        child = subprocess.Popen(argv, preexec_fn=die_with_parent(signal.SIGKILL))
        code = child.wait()
        if stopping or code == 0:
            return code
        if time.monotonic() - started > 60:
            delay = 1.0  # it ran a while: a new failure, not a crash loop
        log.error("celery worker exited; restarting it", exit_code=code, restart_in_s=delay)
        time.sleep(delay)
        delay = min(30.0, delay * 2)
