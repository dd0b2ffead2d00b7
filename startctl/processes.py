"""Start START services as local processes on loopback: used by `startctl up` and the tests.

Each service runs as `python -m startctl serve NAME`, its own process, with settings passed
as environment variables, exactly as a container would run it.

Supervision: no child outlives the command that started it. Each child leads its own
process group (a session), so its own children (vLLM's engine core, the worker's Celery
process) are stopped with it; it is asked to stop with SIGTERM, then its group is killed.
`stop_children_on_signals` turns SIGTERM, SIGINT and SIGHUP into an exception in the
command, so its `with` blocks stop their children; and a child started here gets SIGTERM
from the kernel when its parent dies without stopping it (SIGKILL, a crash).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from services.common.channels import wait_serving

SERVICES = ("generation", "hints", "sandbox", "scoring", "orchestrator")


# Loaded before any fork: in the child, between fork and exec, only the call itself runs.
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
# The signals a user or a supervisor stops a command with: Ctrl-C, `kill`, a closed terminal.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` that has the kernel send `signum` to the child when its parent dies.

    SIGTERM, not SIGKILL, by default: a service's own shutdown is what stops its children
    (the sandbox service's runsc containers, the engine core of vLLM), and SIGKILL would
    skip it. Linux only (prctl PR_SET_PDEATHSIG); elsewhere it does nothing. The kernel
    sends the signal when the *thread* that started the child ends: start children from
    the main thread, or from a thread that lives as long as they should.
    """
    parent = os.getpid()

    def in_child() -> None:
        with contextlib.suppress(AttributeError, OSError):
            _LIBC.prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:
            # The parent died between fork and prctl: no signal will come, so stop now.
            os.kill(os.getpid(), signum)

    return in_child


class StopRequested(SystemExit):
    """SIGTERM or SIGHUP in a command: unwinds it like Ctrl-C so its children are stopped."""


@contextlib.contextmanager
def stop_children_on_signals() -> Iterator[None]:
    """Within this block, SIGTERM and SIGHUP unwind the main thread as SIGINT does.

    Python's default for SIGTERM and SIGHUP is to die at once, skipping every `finally`
    and `__exit__`, so a `startctl up` killed by a supervisor or a closed terminal left
    its services running and holding their ports. Here SIGINT raises KeyboardInterrupt
    (as always) and SIGTERM and SIGHUP raise `StopRequested` (exit status 128 + signal,
    as the shell reports a signal death), and the `with LocalStack(...)` blocks stop
    their children on the way out. The first signal is the one that counts: later ones
    are ignored, so they cannot cut the stopping short (it is bounded: a child that does
    not stop within its grace is killed).
    """

    def on_signal(signum: int, frame: object) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise StopRequested(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalProcess:
    """A child process with its log file, in its own process group, that dies with us.

    Stopped with SIGTERM to the child (its own shutdown stops what it started), then
    SIGKILL to its whole group: to a child that did not stop within its grace, and to
    anything of its group left behind after it exited.
    """

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
            preexec_fn=die_with_parent(),
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and not self._exited()

    def _exited(self) -> bool:
        """Whether the child has exited, without reaping it: until `stop` reaps it, its
        id still names its process group, which `stop` kills (no other process can have
        been given that id meanwhile)."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, grace_s: float = 15.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return  # never started, or already reaped (stopped before)
        if not self._exited():
            # os.kill, not Popen.send_signal: that one reaps a child it finds exited.
            os.kill(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while not self._exited() and time.monotonic() < deadline:
                time.sleep(0.05)
        # The whole group: the child if it outstayed its grace, and whatever of it is left
        # after it exited (it is not reaped yet, so the group id is still its own).
        with contextlib.suppress(ProcessLookupError, PermissionError):
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
