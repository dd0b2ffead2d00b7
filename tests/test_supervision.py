"""No process outlives the command that started it (startctl/processes.py).

Fast tests run a small process tree with the same code `startctl up`, `demo` and `bench`
use: a command (`stop_children_on_signals` around a `LocalStack`'s processes) whose
children each listen on a port and start a grandchild that listens on another. One slow
test does the same to `startctl up` itself: every process of the platform, the vLLM
engine core and the runsc sandboxes included.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.common.settings import DEFAULT_PORTS
from services.sandbox.bundle import BundleSpec
from services.sandbox.executor import Sandbox, gvisor_launcher
from startctl.processes import LocalProcess, free_port

# A child as a service would be: it listens, starts a grandchild that listens too, and on
# SIGTERM stops the grandchild ("tidy"), leaves it behind ("careless") or ignores the
# signal ("stubborn"). It writes its pids once both ports are open.
CHILD = r"""
import json, signal, socket, subprocess, sys, time
mode, port, grand_port, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
GRANDCHILD = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "time.sleep(600)\n"
)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen()
grandchild = subprocess.Popen([sys.executable, "-c", GRANDCHILD, str(grand_port)])
if mode == "tidy":
    def stop(signum, frame):
        grandchild.terminate()
        grandchild.wait()
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
elif mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
while socket.socket().connect_ex(("127.0.0.1", grand_port)) != 0:
    time.sleep(0.05)
with open(out + ".tmp", "w") as f:
    json.dump({"child": __import__("os").getpid(), "grandchild": grandchild.pid}, f)
__import__("os").rename(out + ".tmp", out)
time.sleep(600)
"""

# A command as `startctl up` is: its children in a LocalStack, stopped on the way out of
# `stop_children_on_signals`.
COMMAND = r"""
import json, sys, time
from pathlib import Path
from startctl.processes import LocalProcess, stop_children_on_signals
from startctl.stack import LocalStack
spec = json.loads(sys.argv[1])
run_dir = Path(spec["dir"])
children = [
    LocalProcess(c["name"], [sys.executable, spec["child"], c["mode"], str(c["port"]), str(c["grand_port"]),
                             str(run_dir / (c["name"] + ".json"))], log_dir=run_dir)
    for c in spec["children"]
]
stack = LocalStack(run_dir=run_dir, processes=children)
try:
    with stop_children_on_signals():
        try:
            for child in children:
                child.start()
            print("started", flush=True)
            while True:
                time.sleep(1)
        finally:
            stack.stop()
except KeyboardInterrupt:
    sys.exit(130)
"""


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def listening(port: int) -> bool:
    """Whether something listens on the port (binding it, as the next start would, fails)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class Command:
    """The small command above, run as its own process, with the pids and ports it holds."""

    def __init__(self, tmp: Path, modes: list[str], ports: list[int] | None = None) -> None:
        self.tmp = tmp
        (tmp / "child.py").write_text(CHILD)
        self.ports = ports or [free_port() for _ in range(2 * len(modes))]
        self.children = [
            {"name": f"{mode}-{i}", "mode": mode, "port": self.ports[2 * i], "grand_port": self.ports[2 * i + 1]}
            for i, mode in enumerate(modes)
        ]
        self.proc: subprocess.Popen | None = None
        self.pids: list[int] = []

    def start(self) -> Command:
        for child in self.children:
            (self.tmp / f"{child['name']}.json").unlink(missing_ok=True)
        spec = {"dir": str(self.tmp), "child": str(self.tmp / "child.py"), "children": self.children}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", COMMAND, json.dumps(spec)], stdout=subprocess.PIPE, text=True,
            start_new_session=True,  # a test's signals reach only the command
        )
        assert self.proc.stdout.readline().strip() == "started"
        files = [self.tmp / f"{child['name']}.json" for child in self.children]
        assert wait_until(lambda: all(f.exists() for f in files), 30), "children did not start"
        self.pids = [pid for f in files for pid in json.loads(f.read_text()).values()]
        assert all(alive(pid) for pid in self.pids) and all(listening(port) for port in self.ports)
        return self

    def left(self) -> tuple[list[int], list[int]]:
        """The pids still running and the ports still listened on."""
        return [pid for pid in self.pids if alive(pid)], [port for port in self.ports if listening(port)]

    def kill_all(self) -> None:
        for pid in [*self.pids, *([self.proc.pid] if self.proc else [])]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture()
def command(tmp_path: Path) -> Iterator[Callable[..., Command]]:
    made: list[Command] = []

    def make(modes: list[str], ports: list[int] | None = None) -> Command:
        cmd = Command(tmp_path, modes, ports)
        made.append(cmd)
        return cmd

    yield make
    for cmd in made:  # whatever a failed test left behind
        cmd.kill_all()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_stops_every_child_and_grandchild_and_frees_their_ports(command, signum):
    cmd = command(["tidy", "careless"]).start()
    cmd.proc.send_signal(signum)
    assert cmd.proc.wait(timeout=30) == 128 + signum
    assert cmd.left() == ([], [])
    # The next start gets the same ports.
    again = command(["tidy", "careless"], ports=cmd.ports).start()
    again.proc.send_signal(signal.SIGTERM)
    assert again.proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert again.left() == ([], [])


def test_children_die_with_a_command_that_is_killed(command):
    cmd = command(["tidy", "tidy"]).start()
    cmd.proc.send_signal(signal.SIGKILL)
    cmd.proc.wait(timeout=10)
    assert wait_until(lambda: cmd.left() == ([], []), timeout_s=15), f"left behind: {cmd.left()}"


def test_a_child_that_ignores_sigterm_is_killed_with_its_group_after_its_grace(tmp_path):
    (tmp_path / "child.py").write_text(CHILD)
    port, grand_port, out = free_port(), free_port(), tmp_path / "stubborn.json"
    child = LocalProcess("stubborn", [sys.executable, str(tmp_path / "child.py"), "stubborn", str(port),
                                      str(grand_port), str(out)], log_dir=tmp_path).start()
    try:
        assert wait_until(out.exists, 30), child.tail()
        pids = list(json.loads(out.read_text()).values())
        started = time.monotonic()
        child.stop(grace_s=1.0)
        assert time.monotonic() - started < 5
        assert wait_until(lambda: not any(alive(pid) for pid in pids), 5)
        assert not listening(port) and not listening(grand_port)
    finally:
        child.stop(grace_s=0)


@pytest.mark.runsc
async def test_a_sandbox_service_start_deletes_containers_whose_runsc_was_killed(tmp_path):
    """`runsc run` SIGKILLed with its sandbox leaves a "stopped" container behind; the next
    sandbox service's start (its launcher) deletes it, and leaves running ones alone."""
    spec = BundleSpec(packages=(), preload=())
    launcher = gvisor_launcher("runsc", tmp_path, "ptrace", spec)
    killed, running = Sandbox(launcher, 0), Sandbox(launcher, 1)
    await killed.start(timeout_s=60)
    await running.start(timeout_s=60)
    try:
        os.killpg(killed.proc.pid, signal.SIGKILL)
        await killed.proc.wait()
        assert runsc_list(tmp_path) == {killed.cid: "stopped", running.cid: "running"}
        gvisor_launcher("runsc", tmp_path, "ptrace", spec)
        assert runsc_list(tmp_path) == {running.cid: "running"}
    finally:
        await running.close()
        await killed.close()
    assert runsc_list(tmp_path) == {}


def runsc_list(state_dir: Path) -> dict[str, str]:
    listed = subprocess.run(["runsc", "--root", str(state_dir / "runsc"), "list", "--format=json"],
                            capture_output=True, text=True, check=True)
    return {c["id"]: c["status"] for c in json.loads(listed.stdout) or []}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


UP_PORTS = [*DEFAULT_PORTS.values(), 6390]


def start_up(cwd: Path) -> tuple[subprocess.Popen, list[int]]:
    """`startctl up` until it is ready; it and every process under it."""
    cwd.mkdir(parents=True, exist_ok=True)
    log = cwd / "up.log"
    with open(log, "w") as out:
        up = subprocess.Popen([sys.executable, "-m", "startctl", "up"], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 900
    while "Try: startctl solve" not in log.read_text():
        assert up.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "startctl up not ready after 15 minutes"
        time.sleep(1)
    return up, descendants(up.pid)


@pytest.mark.slow
@pytest.mark.runsc
def test_startctl_up_leaves_nothing_behind_on_sigterm_nor_when_killed(tmp_path):
    busy = [port for port in UP_PORTS if listening(port)]
    if busy:
        pytest.skip(f"`startctl up`'s ports are taken (another `startctl up`?): {busy}")
    up, tree = start_up(tmp_path / "first")
    try:
        assert len(tree) >= 8  # redis, five services, the worker and its Celery process at least
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=180) == 128 + signal.SIGTERM
        assert [pid for pid in tree if alive(pid)] == []
        assert [port for port in UP_PORTS if listening(port)] == []

        # It starts again on the same ports; killed outright, its processes stop themselves.
        up, tree = start_up(tmp_path / "second")
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=10)
        assert wait_until(lambda: not any(alive(pid) for pid in tree), timeout_s=120), [
            pid for pid in tree if alive(pid)
        ]
        assert [port for port in UP_PORTS if listening(port)] == []
    finally:
        for pid in [up.pid, *tree]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
