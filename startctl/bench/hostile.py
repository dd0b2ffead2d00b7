"""The one catalogue of hostile programs, each with its containment check: what
`startctl bench soak` throws at a live sandbox service over gRPC, and what the sandbox tests
run under runsc (tests/services/sandbox/test_hostile_processes.py) and in pod mode
(test_pod_mode.py).

A check takes what the sandbox answered, as a `Reply` (the `startctl sandbox exec --json`
shape), and returns "" when the program was contained, else what escaped: the soak records
that as a verdict, a test asserts it is "". So a program and what "contained" means for it
live in one place; where pod mode legitimately differs (it shares /proc and a writable /tmp
with the service), the check says so through its `pod` argument.

`startctl bench soak` runs `CATALOGUE` against the very sandbox service its episodes use,
while they use it: containment must hold under load, not only on an idle sandbox. Each
program is judged by what came back (status, output, wall time), by what the host saw (a
listener on the host's loopback that must never be reached, a secret file that must never
be read), and by the service answering a plain run right after it (`still serving`).
Planted symlinks are left out of the soak: they are judged by the next run on the same
sandbox (its run number, whether the clean-up retired the sandbox), and through a pool of
several sandboxes shared with the episodes a run cannot tell which one it landed on.
"""

from __future__ import annotations

import re
import secrets
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import grpc

from services.common.channels import channel
from start.v1 import sandbox_pb2, sandbox_pb2_grpc

# A full sandbox pool answers RESOURCE_EXHAUSTED (its queue is bounded): under a soak that is
# expected, so a hostile run waits its turn like an episode's tool call does, this long at most.
BUSY_WAIT_S = 180.0
# How much later than its own time limit a killed run may come back on a loaded machine.
KILL_SLACK_S = 15.0


class Reply(TypedDict):
    """What the sandbox answered, as `startctl sandbox exec --json` prints it and
    `Result.as_dict()` gives it: status name without its prefix, output and wall time."""

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
        return "" if (reply["status"], reply["stdout"]) == ("OK", "still serving\n") else f"next run: {reply}"

    def close(self) -> None:
        self._channel.close()


def _status(reply: Reply, *wanted: str) -> str:
    """Empty when the reply's status is one of `wanted`; else which it was, and the end of
    its stderr (a traceback says why)."""
    if reply["status"] in wanted:
        return ""
    return f"status {reply['status']}, wanted {' or '.join(wanted)}: {reply['stderr'][-300:]!r}"


def run_number(stdout: str) -> int:
    """The execution's number within its sandbox, from the scratch directory (`.../run-N`)
    the program printed last: consecutive numbers mean the same sandbox, not retired."""
    match = re.search(r"/run-(\d+)$", stdout.strip())
    if not match:
        raise ValueError(f"no scratch directory at the end of {stdout[-200:]!r}")
    return int(match.group(1))


# --- Programs that go after the sandbox itself (its processes, its frames, its clean-up) ---
# Each prints what it reached; its check says what it must not have reached.

THREAD_BOMB = textwrap.dedent("""\
    import threading, time
    started = 0
    try:
        while True:
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
            started += 1
    except RuntimeError as exc:
        print('stopped', started, exc)
    """)


def check_thread_bomb(reply: Reply) -> str:
    # Threads count against the process limit (max_processes, 32 by default).
    if why := _status(reply, "OK"):
        return why
    words = reply["stdout"].split()
    if words[:1] != ["stopped"]:
        return f"never stopped: {reply['stdout'][:200]!r}"
    return "" if int(words[1]) < 64 else f"started {words[1]} threads, past the process limit"


# No newline ever, large writes: the cap must hold on bytes, not on lines.
STDERR_FLOOD = "import os\nwhile True:\n    os.write(2, b'e' * 1_000_000)\n"
FLOOD_LIMIT_BYTES = 10_000  # the output limit the flood is run with
# A flood stops at its first oversized write; this much wall time means it ran on instead.
FLOOD_STOPPED_WITHIN_MS = 5000


def check_stderr_flood(reply: Reply, limit: int = FLOOD_LIMIT_BYTES) -> str:
    if len(reply["stderr"]) >= limit + 200:
        return f"{len(reply['stderr'])} bytes of stderr came back past a {limit}-byte limit"
    if reply["wall_ms"] >= FLOOD_STOPPED_WITHIN_MS:
        return f"stopped only after {reply['wall_ms']:.0f} ms"
    why = _status(reply, "OUTPUT_LIMIT")
    return why or ("" if "output truncated" in reply["stderr"] else "no truncation marker on stderr")


# Every other process's memory (read where its maps say it is mapped), its file descriptors
# (opened for reading and writing: the fork server's frame channel is among them), and its
# environment (SANDBOX_TEST_SECRET is what the tests put in the service's); then the run's
# own descriptors.
PROC_PROBE = textwrap.dedent("""\
    import os
    me = os.getpid()
    others = sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me)
    print('others', len(others))
    for pid in others:
        address = 0x400000
        try:
            with open(f'/proc/{pid}/maps') as maps:
                address = int(maps.readline().split('-')[0], 16)
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(f'/proc/{pid}/mem', 'rb') as mem:
                mem.seek(address)
                print('read memory of', pid, len(mem.read(64)))
        except OSError:
            pass
        try:
            environ = open(f'/proc/{pid}/environ', 'rb').read()
            if b'SANDBOX_TEST_SECRET' in environ:
                print('secret in the environment of', pid)
        except OSError:
            pass
        try:
            fds = os.listdir(f'/proc/{pid}/fd')
        except OSError:
            continue
        for fd in fds:
            for mode in ('rb', 'wb'):
                try:
                    with open(f'/proc/{pid}/fd/{fd}', mode, buffering=0):
                        target = os.readlink(f'/proc/{pid}/fd/{fd}')
                        print('opened', pid, fd, mode, target)
                except OSError:
                    pass
    print('own', sorted(int(fd) for fd in os.listdir('/proc/self/fd'))[:3], len(os.listdir('/proc/self/fd')))
    """)


def check_proc_probe(reply: Reply, pod: bool = False) -> str:
    """In pod mode the service shares the kernel and /proc with the run, and gVisor (2022-12)
    lets any uid read its environ and reopen its stdin, which is a host file (the pod's
    /dev/null); nothing else (docs/sandbox.md, threat model)."""
    if why := _status(reply, "OK"):
        return why
    lines = reply["stdout"].splitlines()
    if not lines or not lines[0].startswith("others "):
        return f"the probe printed {reply['stdout'][:200]!r}"
    if int(lines[0].split()[1]) < 1:
        return "saw no other process: the fork server at least is in /proc"
    read = [line for line in lines if line.startswith("read memory")]
    if read:
        return f"read another process's memory: {read[:3]}"
    secret = [line for line in lines if line.startswith("secret")]
    if secret and not pod:
        return f"read the service's environment: {secret[:3]}"
    opened = [line.split() for line in lines if line.startswith("opened")]
    # gVisor lets any uid reopen another process's /dev/null; nothing else may open.
    others = [o for o in opened if o[4] != "/dev/null" and not (pod and o[2] == "0" and o[4].startswith("host:"))]
    if others:
        return f"opened another process's descriptors: {others[:3]}"
    # stdin, stdout, stderr and the directory listing itself: nothing inherited.
    return "" if lines[-1] == "own [0, 1, 2] 4" else f"descriptors inherited: {lines[-1]}"


PTRACE_EVERYONE = textwrap.dedent("""\
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 16, 17, 0x4206
    me = os.getpid()
    targets = sorted({1, os.getppid()} | {int(p) for p in os.listdir('/proc') if p.isdigit()} - {me})
    for pid in targets:
        for request in (PTRACE_ATTACH, PTRACE_SEIZE):
            if libc.ptrace(request, pid, None, None) == 0:
                print('attached', pid, request)
                libc.ptrace(PTRACE_DETACH, pid, None, None)
    print('tried', len(targets))
    """)


def check_ptrace(reply: Reply) -> str:
    if why := _status(reply, "OK"):
        return why
    attached = [line for line in reply["stdout"].splitlines() if line.startswith("attached")]
    if attached:
        return f"ptrace attached: {attached[:3]}"
    tried = reply["stdout"].split()
    return "" if tried[:1] == ["tried"] and int(tried[-1]) >= 1 else f"found no process to try: {tried[:20]}"


# A frame in the fork server's wire format (length, then a JSON reply saying OK), then a
# length that promises 2 GiB, then exit 3: only the real exit may decide the reply.
FORGED_FRAME = textwrap.dedent("""\
    import json, os, struct, sys
    reply = {'status': 'OK', 'exit_code': 0, 'stdout': 'Zm9yZ2Vk', 'stderr': '', 'wall_ms': 1,
             'clean': True, 'forged-frame': True}
    body = json.dumps(reply).encode()
    os.write(1, struct.pack('>I', len(body)) + body + struct.pack('>I', 2 ** 31))
    sys.exit(3)
    """)


def check_forged_frame(reply: Reply) -> str:
    if (reply["status"], reply["exit_code"]) != ("RUNTIME_ERROR", 3):
        return f"status {reply['status']}, exit {reply['exit_code']}: the forged frame decided the reply"
    return "" if '"forged-frame": true' in reply["stdout"] else "the frame did not come back as the run's output"


def children_holding(children: int, mb: int) -> str:
    """A program whose `children` processes each fill and hold `mb` MiB at the same time."""
    return textwrap.dedent(f"""\
        import os, time
        pids = []
        for _ in range({children}):
            pid = os.fork()
            if pid == 0:
                held = b'x' * ({mb} << 20)
                time.sleep(2)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        print('all children done')
        """)


# Run with MEMORY_LIMIT_MB: processes that each stay under it but together pass it, then
# fewer that together stay under it (the limit is over all of a run's processes, and no
# stricter than that).
MEMORY_LIMIT_MB = 256
CHILDREN_OVER_THE_LIMIT = children_holding(6, 100)
CHILDREN_UNDER_THE_LIMIT = children_holding(3, 40)


def check_memory_across_processes(over: Reply, under: Reply, limit_mb: int = MEMORY_LIMIT_MB) -> str:
    if "all children done" in over["stdout"]:
        return f"{over['stdout'].strip()!r}: processes together held more than {limit_mb} MiB"
    if why := _status(over, "MEMORY_LIMIT"):
        return why
    if f"over its memory limit of {limit_mb} MiB" not in over["stderr"]:
        return f"no memory-limit message: {over['stderr'][-300:]!r}"
    if (under["status"], under["stdout"]) != ("OK", "all children done\n"):
        return f"a run under the limit was stopped: {under['status']} {under['stderr'][-300:]!r}"
    return ""


# Links from the run's scratch directory (and /tmp, /dev/shm where they are writable, as in
# a pod) to the scratch root, the parent directory, the fork server and /; a directory of the
# run's holding one more. POD_CANARY is a root-owned directory the pod-mode test makes in the
# pod's /tmp, for the shared-directory links to aim at.
POD_CANARY = "/tmp/pod-canary"
PLANT_SYMLINKS = textwrap.dedent(f"""\
    import os
    scratch = os.getcwd()
    planted = 0
    for name, target in (('root', os.path.dirname(scratch)), ('up', '..'), ('server', '/opt/start'),
                         ('server-file', '/opt/start/forkserver.py'), ('slash', '/')):
        os.symlink(target, name)
        planted += 1
    os.mkdir('inner')
    os.symlink('/', 'inner/slash')
    for shared in ('/tmp', '/dev/shm'):
        try:
            os.symlink({POD_CANARY!r}, shared + '/link-to-canary')
            os.mkdir(shared + '/dir-of-run')
            os.symlink({POD_CANARY!r}, shared + '/dir-of-run/canary')
            os.symlink({POD_CANARY!r} + '/keep.txt', shared + '/dir-of-run/keep')
            print('planted in', shared)
        except OSError:
            pass
    print('planted', planted)
    print(scratch)
    """)
# The next run on the same sandbox: what is left of the links, in the shared directories and
# in its own scratch directory, then that directory (for its run number).
AFTER_SYMLINKS = textwrap.dedent("""\
    import os
    names = ('link-to-canary', 'dir-of-run')
    print([n for d in ('/tmp', '/dev/shm') if os.path.isdir(d) for n in os.listdir(d) if n in names], os.listdir('.'))
    print(os.getcwd())
    """)


def check_planted_symlinks(planted: Reply, after: Reply, pod: bool = False, canary_whole: bool = True) -> str:
    """`after` ran AFTER_SYMLINKS right after PLANT_SYMLINKS on a sandbox of one. A clean-up
    that followed the links would delete what is not the run's (the canary, in a pod) or fail,
    and a failed clean-up retires the sandbox: `after` would then be run 1 of a fresh one."""
    if why := _status(planted, "OK"):
        return f"planting: {why}"
    if "planted 5" not in planted["stdout"]:
        return f"the links were not planted: {planted['stdout'][:200]!r}"
    if pod and "planted in /tmp" not in planted["stdout"]:
        return "in a pod /tmp is writable, so the clean-up must be what holds; the links did not land there"
    if not canary_whole:
        return "the clean-up followed a planted link out of the run's files"
    if why := _status(after, "OK"):
        return f"the run after: {why}"
    if not after["stdout"].startswith("[] []\n"):
        return f"the run's links and directory were not removed: {after['stdout'][:200]!r}"
    try:
        same_sandbox = run_number(after["stdout"]) == run_number(planted["stdout"]) + 1
    except ValueError as exc:
        return str(exc)
    return "" if same_sandbox else "the clean-up failed or reached outside the run: the sandbox was retired"


# --- The soak's catalogue: each runs its program(s) on the service and judges the reply ---


def fork_bomb(sandbox: Sandbox, host: Host) -> str:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    reply = sandbox.run(code, timeout_s=2)
    late = reply["wall_ms"] > (2 + KILL_SLACK_S) * 1000
    # Stopped at the wall time, or sooner when its processes together reach the run's memory
    # limit (the fork server adds up the memory of all of a run's processes).
    why = _status(reply, "TIMEOUT", "MEMORY_LIMIT")
    return why or (f"killed only after {reply['wall_ms']:.0f} ms" if late else "")


def memory_hog(sandbox: Sandbox, host: Host) -> str:
    reply = sandbox.run("x = bytearray(8 * 1024 ** 3)\nprint('allocated')\n", memory_mb=256)
    return _status(reply, "MEMORY_LIMIT") or ("allocated 8 GiB" if "allocated" in reply["stdout"] else "")


def cpu_spin_past_time_limit(sandbox: Sandbox, host: Host) -> str:
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    reply = sandbox.run(code, timeout_s=2)
    late = reply["wall_ms"] > (2 + KILL_SLACK_S) * 1000
    return _status(reply, "TIMEOUT") or (f"killed only after {reply['wall_ms']:.0f} ms" if late else "")


def output_flood(sandbox: Sandbox, host: Host) -> str:
    reply = sandbox.run("while True:\n    print('x' * 1000)\n", output_limit=10_000, timeout_s=10)
    if len(reply["stdout"]) > 10_000 + 200:
        return f"{len(reply['stdout'])} bytes of stdout came back past a 10000-byte limit"
    return _status(reply, "OUTPUT_LIMIT") or ("" if "output truncated" in reply["stdout"] else "no truncation marker")


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
    if host.secret in reply["stdout"]:
        return "read the host's secret file"
    refused = reply["stdout"].count("refused")
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
    if first["status"] != "OK":
        return f"run A: status {first['status']}"
    scratch = first["stdout"].strip()
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
        if later["status"] != "OK" or "found []" not in later["stdout"]:
            return f"a later run: status {later['status']}, {later['stdout'].strip()[:200]}"
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
    if host.accepted or "connected" in reply["stdout"]:
        return f"reached the network: {reply['stdout'].strip()[:200]}"
    return _status(reply, "OK") or ("" if reply["stdout"].count("refused") == 2 else reply["stdout"].strip()[:200])


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
    wrote = [line for line in reply["stdout"].splitlines() if line.startswith("wrote")]
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
    return _status(reply, "OK") or ("" if "survived" in reply["stdout"] else "the run was killed with its parent")


def thread_bomb(sandbox: Sandbox, host: Host) -> str:
    return check_thread_bomb(sandbox.run(THREAD_BOMB, timeout_s=10))


def stderr_flood(sandbox: Sandbox, host: Host) -> str:
    return check_stderr_flood(sandbox.run(STDERR_FLOOD, output_limit=FLOOD_LIMIT_BYTES, timeout_s=10))


def other_processes_through_proc(sandbox: Sandbox, host: Host) -> str:
    return check_proc_probe(sandbox.run(PROC_PROBE, timeout_s=20))


def ptrace_everyone(sandbox: Sandbox, host: Host) -> str:
    return check_ptrace(sandbox.run(PTRACE_EVERYONE))


def forged_frame(sandbox: Sandbox, host: Host) -> str:
    return check_forged_frame(sandbox.run(FORGED_FRAME))


def memory_across_processes(sandbox: Sandbox, host: Host) -> str:
    over = sandbox.run(CHILDREN_OVER_THE_LIMIT, memory_mb=MEMORY_LIMIT_MB, timeout_s=30)
    under = sandbox.run(CHILDREN_UNDER_THE_LIMIT, memory_mb=MEMORY_LIMIT_MB, timeout_s=30)
    return check_memory_across_processes(over, under)


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
    "thread bomb": thread_bomb,
    "stderr flood without newlines": stderr_flood,
    "other processes' memory, descriptors, environment (/proc)": other_processes_through_proc,
    "ptrace of every process": ptrace_everyone,
    "forged fork-server reply frame": forged_frame,
    "memory spread over a run's processes": memory_across_processes,
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
