"""Start START services as local processes on loopback: used by `startctl up` and the tests.

Each service runs as `python -m startctl serve NAME`, its own process, with settings passed
as environment variables, exactly as a container would run it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.channels import wait_serving

SERVICES = ("generation", "hints", "sandbox", "scoring", "orchestrator")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalProcess:
    """A child process with its log file; stopped with SIGTERM, then SIGKILL."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="start-")))
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> LocalProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, grace_s: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def service_process(
    name: str, port: int, env: dict[str, str] | None = None, log_dir: Path | None = None
) -> LocalProcess:
    prefix = f"START_{name.upper()}_"
    settings = {f"{prefix}PORT": str(port), **(env or {})}
    proc = LocalProcess(name, [sys.executable, "-m", "startctl", "serve", name], settings)
    if log_dir is not None:
        proc.log_dir = log_dir
    return proc


def wait_ready(proc: LocalProcess, addr: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start:\n{proc.tail()}")
        try:
            wait_serving(addr, timeout_s=min(2.0, deadline - time.monotonic()))
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"{proc.name} not ready after {timeout_s:.0f}s:\n{proc.tail()}")


def redis_process(port: int, data_dir: Path) -> LocalProcess:
    """A local redis-server with append-only persistence, so accepted work survives a restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: apt-get install -y redis-server (or run `make setup`)")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
    ]
    return LocalProcess("redis", argv, log_dir=data_dir)


def wait_redis(url: str, proc: LocalProcess | None = None, timeout_s: float = 20.0) -> None:
    import redis

    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(url)
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"redis exited during start:\n{proc.tail()}")
        try:
            if client.ping():
                return
        except redis.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"redis at {url} not answering after {timeout_s:.0f}s")
