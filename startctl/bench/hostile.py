"""A catalogue of hostile programs, each with its containment check, sent to a live sandbox
service over its gRPC `Execute`, as model-written code reaches it.

`startctl bench soak` runs the catalogue against the very sandbox service its episodes use,
while they use it: containment must hold under load, not only on an idle sandbox. Each
program is judged by what came back (status, output, wall time), by what the host saw (a
listener on the host's loopback that must never be reached, a secret file that must never
be read), and by the service answering a plain run right after it (`still serving`). The
unit tests in tests/services/sandbox/test_hostile_programs.py check the same behaviours one
by one; this module is the one list a soak (or any later suite) can run end to end.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from services.common.channels import channel
from start.v1 import sandbox_pb2, sandbox_pb2_grpc

# A full sandbox pool answers RESOURCE_EXHAUSTED (its queue is bounded): under a soak that is
# expected, so a hostile run waits its turn like an episode's tool call does, this long at most.
BUSY_WAIT_S = 180.0
# How much later than its own time limit a killed run may come back on a loaded machine.
KILL_SLACK_S = 15.0


@dataclass
class Reply:
    """What the sandbox answered: status name without its prefix, output and wall time."""

    status: str
    exit_code: int
    stdout: str
    stderr: str
    wall_ms: float


@dataclass
class Verdict:
    """One hostile program's outcome: contained or not, and what the check saw."""

    name: str
    contained: bool
    detail: str
    wall_s: float = 0.0


@dataclass
class Host:
    """The host side of the checks: a listener on the host's loopback that records every
    connection, and a secret file on the host; neither may be reached from a run."""

    listener_port: int
    secret_path: Path
    secret: str
    accepted: list[str] = field(default_factory=list)


class Sandbox:
    """The sandbox service's Execute, waiting out a full pool."""

    def __init__(self, addr: str) -> None:
        self._channel = channel(addr)
        self._stub = sandbox_pb2_grpc.SandboxServiceStub(self._channel)

    def run(self, code: str, timeout_s: float = 5.0, memory_mb: int = 0, output_limit: int = 0) -> Reply:
        request = sandbox_pb2.ExecuteRequest(
            code=code, timeout_s=timeout_s, memory_mb=memory_mb, output_limit_bytes=output_limit
        )
        give_up = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                reply = self._stub.Execute(request, timeout=timeout_s + BUSY_WAIT_S)
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > give_up:
                    raise
                time.sleep(0.5)
        return Reply(
            status=sandbox_pb2.ExecutionStatus.Name(reply.status).removeprefix("EXECUTION_STATUS_"),
            exit_code=reply.exit_code,
            stdout=reply.stdout,
            stderr=reply.stderr,
            wall_ms=reply.wall_ms,
        )

    def still_serving(self) -> str:
        """Empty when a plain run works; else what went wrong."""
        reply = self.run("print('still serving')")
        return "" if reply.status == "OK" and reply.stdout == "still serving\n" else f"next run: {reply}"

    def close(self) -> None:
        self._channel.close()


def _status(reply: Reply, *wanted: str) -> str:
    return "" if reply.status in wanted else f"status {reply.status}, wanted {' or '.join(wanted)}"


def fork_bomb(sandbox: Sandbox, host: Host) -> str:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    reply = sandbox.run(code, timeout_s=2)
    late = reply.wall_ms > (2 + KILL_SLACK_S) * 1000
    # Stopped at the wall time, or sooner when its processes together reach the run's memory
    # limit (the fork server adds up the memory of all of a run's processes).
    why = _status(reply, "TIMEOUT", "MEMORY_LIMIT")
    return why or (f"killed only after {reply.wall_ms:.0f} ms" if late else "")


def memory_hog(sandbox: Sandbox, host: Host) -> str:
    reply = sandbox.run("x = bytearray(8 * 1024 ** 3)\nprint('allocated')\n", memory_mb=256)
    return _status(reply, "MEMORY_LIMIT") or ("allocated 8 GiB" if "allocated" in reply.stdout else "")


def cpu_spin_past_time_limit(sandbox: Sandbox, host: Host) -> str:
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    reply = sandbox.run(code, timeout_s=2)
    late = reply.wall_ms > (2 + KILL_SLACK_S) * 1000
    return _status(reply, "TIMEOUT") or (f"killed only after {reply.wall_ms:.0f} ms" if late else "")


def output_flood(sandbox: Sandbox, host: Host) -> str:
    reply = sandbox.run("while True:\n    print('x' * 1000)\n", output_limit=10_000, timeout_s=10)
    if len(reply.stdout) > 10_000 + 200:
        return f"{len(reply.stdout)} bytes of stdout came back past a 10000-byte limit"
    return _status(reply, "OUTPUT_LIMIT") or ("" if "output truncated" in reply.stdout else "no truncation marker")


def host_files(sandbox: Sandbox, host: Host) -> str:
    targets = [str(host.secret_path), "/etc/shadow", "/root/.bash_history", str(Path(__file__).resolve())]
    code = (
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        print(path, open(path).read())\n"
        "    except OSError as exc:\n"
        "        print(path, 'refused', type(exc).__name__)\n"
    )
    reply = sandbox.run(code)
    if host.secret in reply.stdout:
        return "read the host's secret file"
    refused = reply.stdout.count("refused")
    return _status(reply, "OK") or ("" if refused == len(targets) else f"{len(targets) - refused} host files read")


def another_runs_files(sandbox: Sandbox, host: Host) -> str:
    """Run A leaves a marker in its scratch, /tmp, /var/tmp and /dev/shm; the next runs look
    everywhere A could write (and at A's own scratch path) and must find nothing. With a
    pool of several sandboxes three later runs make it likely one lands on A's sandbox."""
    marker = f"soak-left-{secrets.token_hex(6)}"
    leave = (
        "import os\n"
        f"for d in ('.', '/tmp', '/var/tmp', '/dev/shm'):\n"
        "    try:\n"
        f"        open(os.path.join(d, '{marker}'), 'w').write('{marker}')\n"
        "    except OSError:\n"
        "        pass\n"
        "print(os.path.abspath('.'))\n"
    )
    first = sandbox.run(leave)
    if first.status != "OK":
        return f"run A: status {first.status}"
    scratch = first.stdout.strip()
    search = (
        "import os\n"
        "found = []\n"
        f"for d in ({scratch!r}, '.', '/tmp', '/var/tmp', '/dev/shm'):\n"
        "    for root, _, files in os.walk(d):\n"
        "        for name in files:\n"
        "            path = os.path.join(root, name)\n"
        "            try:\n"
        f"                if name.startswith('soak-left-') or {marker!r} in open(path, errors='replace').read():\n"
        "                    found.append(path)\n"
        "            except OSError:\n"
        "                pass\n"
        "print('found', found)\n"
    )
    for _ in range(3):
        later = sandbox.run(search, timeout_s=30)
        if later.status != "OK" or "found []" not in later.stdout:
            return f"a later run: status {later.status}, {later.stdout.strip()[:200]}"
    return ""


def network_access(sandbox: Sandbox, host: Host) -> str:
    code = (
        "import socket\n"
        f"for addr in (('127.0.0.1', {host.listener_port}), ('1.1.1.1', 53)):\n"
        "    try:\n"
        "        s = socket.create_connection(addr, timeout=3)\n"
        "        print('connected', addr, s.recv(100))\n"
        "    except OSError as exc:\n"
        "        print('refused', addr, type(exc).__name__)\n"
    )
    reply = sandbox.run(code, timeout_s=15)
    if host.accepted or "connected" in reply.stdout:
        return f"reached the network: {reply.stdout.strip()[:200]}"
    return _status(reply, "OK") or ("" if reply.stdout.count("refused") == 2 else reply.stdout.strip()[:200])


def writing_outside_scratch(sandbox: Sandbox, host: Host) -> str:
    name = f"soak-escape-{secrets.token_hex(6)}"
    targets = [f"/{name}", f"/etc/{name}", f"/usr/lib/{name}", f"/proc/{name}"]
    code = (
        "import sys, os\n"
        f"targets = {targets!r} + [os.path.join(sys.prefix, 'lib', {name!r})]\n"
        "for path in targets:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, type(exc).__name__)\n"
    )
    reply = sandbox.run(code)
    wrote = [line for line in reply.stdout.splitlines() if line.startswith("wrote")]
    return _status(reply, "OK") or ("; ".join(wrote) if wrote else "")


def killing_the_parent(sandbox: Sandbox, host: Host) -> str:
    code = (
        "import os, signal\n"
        "for target in (os.getppid(), 1, -1):\n"
        "    try:\n"
        "        os.kill(target, signal.SIGKILL)\n"
        "    except OSError as exc:\n"
        "        print(target, type(exc).__name__)\n"
        "print('survived')\n"
    )
    reply = sandbox.run(code)
    return _status(reply, "OK") or ("" if "survived" in reply.stdout else "the run was killed with its parent")


# name -> the program and its check: an empty string when contained, else what escaped.
CATALOGUE: dict[str, Callable[[Sandbox, Host], str]] = {
    "fork bomb": fork_bomb,
    "memory hog": memory_hog,
    "CPU spin past the time limit": cpu_spin_past_time_limit,
    "output flood": output_flood,
    "reading host files": host_files,
    "reading another run's files, /tmp": another_runs_files,
    "network access": network_access,
    "writing outside scratch": writing_outside_scratch,
    "killing the parent": killing_the_parent,
}


@contextmanager
def host_side() -> Iterator[Host]:
    """A listener on the host's loopback that records connections, and a secret file in the
    host's /tmp; both gone afterwards."""
    secret = f"host-secret-{secrets.token_hex(8)}"
    path = Path("/tmp") / f"start-soak-secret-{secrets.token_hex(4)}"
    path.write_text(secret)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    host = Host(listener_port=server.getsockname()[1], secret_path=path, secret=secret)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            host.accepted.append(str(peer))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        stop.set()
        thread.join()
        server.close()
        path.unlink(missing_ok=True)


def run_catalogue(addr: str) -> list[Verdict]:
    """Every program of the catalogue against the sandbox service at addr, one after another,
    each followed by a plain run that must still work."""
    verdicts = []
    sandbox = Sandbox(addr)
    try:
        with host_side() as host:
            for name, program in CATALOGUE.items():
                started = time.monotonic()
                try:
                    escaped = program(sandbox, host) or sandbox.still_serving()
                except grpc.RpcError as exc:
                    escaped = f"{exc.code().name}: {exc.details()}"
                verdicts.append(Verdict(name, not escaped, escaped or "contained", time.monotonic() - started))
    finally:
        sandbox.close()
    return verdicts
