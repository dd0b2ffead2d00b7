"""The whole platform as local processes on loopback: the embedded default.

`LocalStack` starts a Redis, the five services and a Celery worker, each its own process
wired by the same environment variables a cluster uses, and stops them in reverse order.
`startctl up`, `solve` and `demo` use it; so can a test or a notebook. Nothing it starts
outlives it: each process is stopped with its process group, and dies with the stack's
process if that one is killed (startctl/processes.py); a command using it runs it inside
`stop_children_on_signals()` so that SIGTERM and SIGHUP stop the stack as Ctrl-C does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from startctl.processes import (
    LocalProcess,
    free_port,
    redis_process,
    service_process,
    wait_ready,
    wait_redis,
)

ROOT = Path(__file__).resolve().parent.parent
MICRO_MODEL = ROOT / "models" / "start-micro"


def shared_machine_engine_env() -> dict[str, str]:
    """vLLM CPU settings for a machine the engine shares with the rest of the platform.

    By default vLLM's CPU worker pins itself to a core and, between steps, busy-waits on
    that core. On a small machine (a laptop, a 2-core CI runner) the processes the kernel
    places on the same core then wait for seconds: measured here, a 10 ms sleep overslept
    by up to 7 s while the engine decoded, and gRPC replies (the generation service's own
    front end included) came back up to 5 s late. One unpinned OpenMP thread lets the
    kernel move work around it: oversleeps stay under 1 s, for about 12% slower decoding
    of the micro model. A setting already in the environment wins; a cluster, where the
    engine has its pod's cores to itself, keeps vLLM's defaults.
    """
    wanted = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}
    return {key: value for key, value in wanted.items() if key not in os.environ}


# Start order: the engine is slowest, so it goes first and the rest start while it loads.
START_ORDER = ("generation", "hints", "sandbox", "scoring", "orchestrator")


@dataclass
class LocalStack:
    """Redis + services + worker on loopback. Use as a context manager."""

    run_dir: Path
    model: Path = MICRO_MODEL
    ports: dict[str, int] = field(default_factory=dict)
    worker_concurrency: int = 16
    extra_env: dict[str, str] = field(default_factory=dict)
    on_status: Callable[[str], None] = lambda message: None
    processes: list[LocalProcess] = field(default_factory=list)

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    def env(self) -> dict[str, str]:
        """The wiring every process gets: where its peers are."""
        return {
            "START_REDIS_URL": self.redis_url,
            **{f"START_{name.upper()}_ADDR": self.addr(name) for name in START_ORDER},
            "START_GENERATION_MODEL": str(self.model),
            "VLLM_CPU_KVCACHE_SPACE": "2",
            # The smallest block vLLM's CPU backend takes: the prefix cache reuses whole
            # blocks only, so hint-infer re-prefills less (docs/generation.md).
            "START_GENERATION_BLOCK_SIZE": "32",
            **shared_machine_engine_env(),
            **self.extra_env,
        }

    def start(self) -> LocalStack:
        for name in ("redis", *START_ORDER):
            self.ports.setdefault(name, free_port())
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.on_status("starting redis")
        redis = redis_process(self.ports["redis"], self.run_dir / "redis")
        redis.log_dir = logs
        # Each process is listed before it starts, so that a stop at any moment reaches it.
        self.processes.append(redis)
        redis.start()
        wait_redis(self.redis_url, redis)

        env = self.env()
        started: dict[str, LocalProcess] = {}
        for name in START_ORDER:
            proc = service_process(name, self.ports[name], env, log_dir=logs)
            self.processes.append(proc)
            started[name] = proc.start()
        worker = LocalProcess(
            "worker",
            [sys.executable, "-m", "startctl", "worker", "--concurrency", str(self.worker_concurrency)],
            env,
            log_dir=logs,
        )
        self.processes.append(worker)
        worker.start()
        # Fast services first; the engine loads in the meantime.
        for name in (*START_ORDER[1:], START_ORDER[0]):
            self.on_status(f"waiting for {name}")
            wait_ready(started[name], self.addr(name), timeout_s=600 if name == "generation" else 120)
        if not worker.alive():
            raise RuntimeError(f"worker exited during start:\n{worker.tail()}")
        self.on_status("ready")
        return self

    def process(self, name: str) -> LocalProcess:
        """The running process of one part of the stack: "redis", a service, or "worker"."""
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise KeyError(f"no process {name!r} in this stack: {[p.name for p in self.processes]}")

    def restart(self, name: str, timeout_s: float = 600) -> LocalProcess:
        """Start one part again on its port, as a supervisor (Kubernetes) would after it
        died: what is left of the old one's process group is killed first (a vLLM engine
        core, runsc sandboxes it left behind), then the same command runs with the same
        environment and log file, and a service is waited for until it is SERVING."""
        index = self.processes.index(self.process(name))
        old = self.processes[index]
        old.stop()
        new = LocalProcess(old.name, old.argv, old.env, log_dir=old.log_dir)
        self.processes[index] = new
        new.start()
        if name == "redis":
            wait_redis(self.redis_url, new)
        elif name in START_ORDER:
            wait_ready(new, self.addr(name), timeout_s)
        return new

    def check_alive(self) -> None:
        for proc in self.processes:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died; last log lines:\n{proc.tail()}")

    def stop(self) -> None:
        """The worker first (its running steps finish against live services), Redis last."""
        while self.processes:
            self.processes[-1].stop()
            self.processes.pop()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def new_run_dir(kind: str) -> Path:
    path = Path.cwd() / "runs" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    return path
