"""Run programs in a pool of warm gVisor sandboxes: the sandbox service's domain logic.

Where it sits: the gRPC servicer (`server.py`), `startctl sandbox exec` and the test
runner (`testcases.py`) all call `SandboxPool.execute`; nothing here knows about gRPC.

Each `Sandbox` is one `runsc run` container booted from the minimal read-only bundle
(`bundle.py`) whose only process is the fork server (`forkserver.py`). The host talks to
it over the container's stdin/stdout with length-prefixed JSON frames. A sandbox serves
one execution at a time and is replaced after `executions_per_sandbox` executions or on
any anomaly (a crash, a late or malformed answer, processes or files that survived the
clean-up), and after an execution stopped at its time or memory limit (its high-water
memory and gVisor stub processes go with it). Callers beyond the pool's size wait in a
bounded queue; beyond that they get `ResourceExhausted` at once, so load never piles up
without bound.

Inside a pod that already runs under gVisor (`isolation=pod`, RuntimeClass gvisor) the fork
servers run as child processes of the service instead, each with its own execution uid,
scratch directory and per-execution network and IPC namespaces. `trusted` mode runs them the same
way on a host without gVisor, for code known to be trusted; it must be asked for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from services.common.errors import FailedPrecondition, ResourceExhausted
from services.common.logs import get_logger
from services.common.text_contract import sandbox_truncation_marker
from services.sandbox.bundle import FORKSERVER, BundleSpec, build_bundle

log = get_logger("sandbox")

EXECUTIONS = Counter("start_sandbox_executions_total", "Executions by outcome", ["status"])
EXECUTION_SECONDS = Histogram(
    "start_sandbox_execution_seconds",
    "Wall time of executions inside the sandbox",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
QUEUED = Gauge("start_sandbox_queued", "Executions waiting for a free sandbox")
SANDBOXES_REPLACED = Counter("start_sandbox_replaced_total", "Sandboxes retired and replaced")

HEADER = struct.Struct(">I")
# Extra seconds the host waits for a sandbox's answer beyond the execution's own timeout
# (clean-up, a slow, loaded machine) before it declares the sandbox broken.
ANSWER_GRACE_S = 15.0


class Status(StrEnum):
    """Outcome of one execution; names match the proto's EXECUTION_STATUS_* values."""

    OK = "OK"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    TIMEOUT = "TIMEOUT"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    SANDBOX_ERROR = "SANDBOX_ERROR"


@dataclass(frozen=True)
class Limits:
    """Per-execution limits; validated at the edge against the service maxima."""

    timeout_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 512
    output_limit_bytes: int = 65536
    max_processes: int = 32
    file_size_mb: int = 16


@dataclass(frozen=True)
class Execution:
    code: str
    stdin: str = ""
    limits: Limits = Limits()


@dataclass(frozen=True)
class Result:
    status: Status
    exit_code: int
    stdout: str
    stderr: str
    wall_ms: float

    def as_dict(self) -> dict:
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "wall_ms": round(self.wall_ms, 3),
        }


class SandboxBroken(Exception):
    """The sandbox itself failed (not the program in it); it is retired."""


GVISOR_PROC_VERSION = "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"
# Every sandbox container's id starts with this; `sweep_stopped_containers` goes by it.
CONTAINER_PREFIX = "start-sbx-"
FIRST_EXECUTION_UID = 60000


@dataclass(frozen=True)
class Launcher:
    """How to start one sandbox process: a runsc container, or a fork server process.

    `argv` and `env` take the sandbox's slot in the pool: fork servers that share a kernel
    need their own execution uid and scratch directory each.
    """

    argv: Callable[[str], list[str]]
    env: Callable[[int], dict[str, str]]
    cleanup: Callable[[str], list[str]] | None = None
    isolated: bool = True


def gvisor_launcher(runsc: str, state_dir: Path, platform: str, spec: BundleSpec) -> Launcher:
    """Sandboxes as `runsc run` containers of the minimal bundle, with no network."""
    state_dir.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(state_dir, spec)
    runsc_root = state_dir / "runsc"
    base = [runsc, "--root", str(runsc_root), "--platform", platform, "--ignore-cgroups"]
    path = os.environ.get("PATH", "/usr/bin:/bin")
    sweep_stopped_containers(base, {"PATH": path})
    return Launcher(
        argv=lambda cid: [*base, "--network=none", "run", "--bundle", str(bundle), cid],
        env=lambda slot: {"PATH": path},
        cleanup=lambda cid: [*base, "delete", "--force", cid],
    )


def sweep_stopped_containers(runsc: list[str], env: dict[str, str]) -> list[str]:
    """Delete what is left of sandboxes that died without their clean-up; their ids.

    A sandbox service stopped by SIGTERM deletes its containers (`Sandbox.close`), and one
    killed outright leaves none running: each fork server exits when the service's end of
    its stdin closes, and `runsc run` then deletes its container. But a `runsc run` that
    was itself SIGKILLed (its whole process tree killed, the OOM killer) leaves the
    container's state under the runsc root, listed as "stopped" forever. Only stopped
    containers are swept: a created or running one may belong to another sandbox service
    that shares this state directory.
    """
    try:
        listed = subprocess.run(
            [*runsc, "list", "--format=json"], capture_output=True, text=True, env=env, timeout=30, check=True
        )
        containers = json.loads(listed.stdout) or []
    except (OSError, subprocess.SubprocessError, ValueError):
        return []  # no runsc root yet (a first start) or an unreadable one: nothing to sweep
    stale = [
        c["id"] for c in containers
        if str(c.get("id", "")).startswith(CONTAINER_PREFIX) and c.get("status") == "stopped"
    ]
    for cid in stale:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([*runsc, "delete", "--force", cid], capture_output=True, env=env, timeout=30)
    if stale:
        log.info("deleted stopped sandbox containers left by an earlier run", count=len(stale))
    return stale


def process_launcher(state_dir: Path, spec: BundleSpec, unshare_net: bool, isolated: bool) -> Launcher:
    """Fork servers as child processes of the service, on the kernel the service runs on.

    Inside a gVisor pod that kernel is gVisor's (the pod is the sandbox); in trusted mode
    it is the host's. Executions keep every per-execution confinement either way.
    """

    def env(slot: int) -> dict[str, str]:
        uid = FIRST_EXECUTION_UID + slot
        scratch = state_dir / "scratch" / str(uid)
        scratch.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": "/usr/bin:/bin",
            "OPENBLAS_NUM_THREADS": "1",
            "START_PRELOAD": ",".join(spec.preload),
            "START_SCRATCH_ROOT": str(scratch),
            "START_EXECUTION_UID": str(uid),
            "START_UNSHARE_NET": "1" if unshare_net else "0",
        }

    return Launcher(argv=lambda cid: [sys.executable, str(FORKSERVER)], env=env, isolated=isolated)


def running_under_gvisor() -> bool:
    try:
        return Path("/proc/version").read_text().startswith(GVISOR_PROC_VERSION)
    except OSError:
        return False


def make_launcher(
    isolation: str, trusted: bool, runsc: str, state_dir: Path, platform: str, spec: BundleSpec
) -> Launcher:
    """The launcher the settings ask for, refusing any set-up that would not isolate.

    `runsc`: a runsc container per sandbox (locally); `pod`: the service already runs in
    a gVisor pod (RuntimeClass gvisor), so fork servers run in it directly. Without gVisor
    either way, only `trusted` lets code run, on the bare kernel.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    if isolation == "pod":
        if not running_under_gvisor() and not trusted:
            raise FailedPrecondition(
                "isolation=pod but this process is not running under gVisor: run the pod with "
                "runtimeClassName gvisor, or set START_SANDBOX_TRUSTED=true for trusted code only."
            )
        if os.geteuid() != 0:
            raise FailedPrecondition(
                "isolation=pod needs root inside the (gVisor) pod to run each execution as its own "
                "unprivileged uid in its own network and IPC namespaces: run the container as uid 0 with "
                "capabilities SETUID, SETGID, KILL, CHOWN, DAC_OVERRIDE, FOWNER, SYS_ADMIN."
            )
        return process_launcher(state_dir, spec, unshare_net=True, isolated=running_under_gvisor())
    found = shutil.which(runsc)
    if found is not None:
        return gvisor_launcher(found, state_dir, platform, spec)
    if not trusted:
        raise FailedPrecondition(
            f"gVisor's runsc not found ({runsc!r}): the sandbox will not run untrusted code without it. "
            "Install it (apt-get install -y runsc) or set START_SANDBOX_TRUSTED=true to run trusted "
            "code without isolation."
        )
    log.warning("runsc not found: running TRUSTED code on the host without gVisor")
    return process_launcher(state_dir, spec, unshare_net=False, isolated=False)


class Sandbox:
    """One warm sandbox: a container running the fork server, one execution at a time."""

    def __init__(self, launcher: Launcher, slot: int) -> None:
        self.launcher = launcher
        self.slot = slot
        self.cid = f"{CONTAINER_PREFIX}{uuid.uuid4().hex[:12]}"
        self.proc: asyncio.subprocess.Process | None = None
        self.executions = 0
        self.broken = False
        # The last execution hit its time or memory limit: retire this sandbox (see `run`).
        self.strained = False
        self._stderr_tail = b""
        self._stderr_task: asyncio.Task | None = None

    async def start(self, timeout_s: float) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.launcher.argv(self.cid),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.launcher.env(self.slot),
            start_new_session=True,
            limit=1 << 30,
        )
        self._stderr_task = asyncio.create_task(self._keep_stderr_tail())
        try:
            hello = await asyncio.wait_for(self._read_frame(), timeout_s)
        except (TimeoutError, SandboxBroken) as exc:
            await self.close()
            raise SandboxBroken(f"sandbox did not start: {exc!r}; stderr: {self.stderr_tail()}") from exc
        except asyncio.CancelledError:
            await asyncio.shield(self.close())
            raise
        if not hello.get("ready"):
            await self.close()
            raise SandboxBroken(f"sandbox sent {hello!r} instead of ready")

    async def _keep_stderr_tail(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(4096):
            self._stderr_tail = (self._stderr_tail + chunk)[-4096:]

    def stderr_tail(self) -> str:
        return self._stderr_tail.decode(errors="replace").strip()

    async def _read_frame(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            header = await self.proc.stdout.readexactly(HEADER.size)
            (size,) = HEADER.unpack(header)
            return json.loads(await self.proc.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ValueError) as exc:
            raise SandboxBroken(f"sandbox channel closed or corrupt: {exc!r}") from exc

    async def run(self, execution: Execution) -> Result:
        """Run one program; raises SandboxBroken when the sandbox, not the program, failed."""
        assert self.proc is not None and self.proc.stdin is not None
        limits = execution.limits
        request = {
            "code": execution.code,
            "stdin": execution.stdin,
            "timeout_s": limits.timeout_s,
            "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb,
            "output_limit_bytes": limits.output_limit_bytes,
            "max_processes": limits.max_processes,
            "file_size_mb": limits.file_size_mb,
        }
        body = json.dumps(request).encode()
        self.executions += 1
        try:
            self.proc.stdin.write(HEADER.pack(len(body)) + body)
            await self.proc.stdin.drain()
            reply = await asyncio.wait_for(self._read_frame(), limits.timeout_s + ANSWER_GRACE_S)
        except (TimeoutError, ConnectionError) as exc:
            self.broken = True
            raise SandboxBroken(f"no answer from the sandbox: {exc!r}") from exc
        except SandboxBroken:
            self.broken = True
            raise
        if not reply.get("clean", False):
            # Something survived the clean-up (or the fork server hit an error): the result
            # stands, but this sandbox is not trusted with another execution.
            self.broken = True
            log.warning("sandbox retired after an unclean execution", cid=self.cid, error=reply.get("error"))
        if reply["status"] == Status.SANDBOX_ERROR.value:
            raise SandboxBroken(reply.get("error", "sandbox error"))
        result = decode_reply(reply, limits.output_limit_bytes)
        # A run stopped at its time or memory limit (a fork bomb, a memory hog, a loop) leaves
        # this sandbox at its high-water mark: gVisor's sentry keeps the memory the run grew
        # to, and its ptrace platform keeps a host stub process for each process the run had.
        # A fresh sandbox costs one boot; carrying that on cost the service +10% RSS in a soak.
        self.strained = result.status in (Status.TIMEOUT, Status.MEMORY_LIMIT)
        return result

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            await self.proc.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
        if self.launcher.cleanup is not None:
            # `runsc run` killed from outside leaves the container's state behind.
            cleanup = await asyncio.create_subprocess_exec(
                *self.launcher.cleanup(self.cid),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=self.launcher.env(self.slot),
            )
            await cleanup.wait()


def decode_reply(reply: dict, limit: int) -> Result:
    stdout = base64.b64decode(reply["stdout"]).decode(errors="replace")
    stderr = base64.b64decode(reply["stderr"]).decode(errors="replace")
    marker = sandbox_truncation_marker(limit)
    if reply.get("truncated_stdout"):
        stdout += marker
    if reply.get("truncated_stderr"):
        stderr += marker
    return Result(
        status=Status(reply["status"]),
        exit_code=int(reply["exit_code"]),
        stdout=stdout,
        stderr=stderr,
        wall_ms=float(reply["wall_ms"]),
    )


class SandboxPool:
    """A fixed number of warm sandboxes, a bounded queue in front of them."""

    def __init__(
        self,
        launcher: Launcher,
        size: int,
        max_queue: int,
        executions_per_sandbox: int,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.launcher = launcher
        self.size = size
        self.max_queue = max_queue
        self.executions_per_sandbox = executions_per_sandbox
        self.start_timeout_s = start_timeout_s
        self._idle: asyncio.Queue[Sandbox] = asyncio.Queue()
        self._waiting = 0
        self._all: set[Sandbox] = set()
        self._replacing: set[asyncio.Task] = set()
        self._running: set[asyncio.Task] = set()
        self._closed = False

    @property
    def isolated(self) -> bool:
        return self.launcher.isolated

    async def start(self) -> None:
        """Boot every sandbox; fails (and cleans up) if any cannot start."""
        results = await asyncio.gather(*(self._boot(slot) for slot in range(self.size)), return_exceptions=True)
        started = [r for r in results if isinstance(r, Sandbox)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(s.close() for s in started))
            raise errors[0]
        for sandbox in started:
            self._all.add(sandbox)
            self._idle.put_nowait(sandbox)

    async def _boot(self, slot: int, attempts: int = 3) -> Sandbox:
        """One started sandbox; runsc occasionally fails a boot on a loaded host, so retry."""
        for attempt in range(1, attempts):
            try:
                return await self._boot_once(slot)
            except SandboxBroken as exc:
                log.warning("sandbox boot failed; retrying", attempt=attempt, error=str(exc))
                await asyncio.sleep(0.2 * attempt)
        return await self._boot_once(slot)

    async def _boot_once(self, slot: int) -> Sandbox:
        sandbox = Sandbox(self.launcher, slot)
        await sandbox.start(self.start_timeout_s)
        return sandbox

    async def execute(self, execution: Execution) -> Result:
        """Run on the next free sandbox; waits in the bounded queue when all are busy."""
        if self._idle.empty() and self._waiting >= self.max_queue:
            raise ResourceExhausted(
                f"all {self.size} sandboxes are busy and {self._waiting} executions are queued "
                f"(max_queue={self.max_queue}); retry later"
            )
        self._waiting += 1
        QUEUED.inc()
        try:
            sandbox = await self._idle.get()
        finally:
            self._waiting -= 1
            QUEUED.dec()
        # Shielded: a caller that gives up (a gRPC deadline, a cancelled call) must not
        # hand the sandbox back while its program still runs; the execution finishes
        # (bounded by its own limits) and only then is the sandbox released.
        run = asyncio.create_task(self._run_and_release(sandbox, execution))
        self._running.add(run)
        run.add_done_callback(self._running.discard)
        return await asyncio.shield(run)

    async def _run_and_release(self, sandbox: Sandbox, execution: Execution) -> Result:
        try:
            result = await sandbox.run(execution)
        except SandboxBroken as exc:
            log.warning("sandbox broken", cid=sandbox.cid, error=str(exc), stderr=sandbox.stderr_tail())
            result = Result(Status.SANDBOX_ERROR, -1, "", f"sandbox error: {exc}", 0.0)
        finally:
            if sandbox.broken or sandbox.strained or sandbox.executions >= self.executions_per_sandbox:
                self._replace(sandbox)
            else:
                self._idle.put_nowait(sandbox)
        EXECUTIONS.labels(result.status.value).inc()
        EXECUTION_SECONDS.observe(result.wall_ms / 1000)
        return result

    def _replace(self, old: Sandbox) -> None:
        SANDBOXES_REPLACED.inc()
        task = asyncio.create_task(self._replace_later(old))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace_later(self, old: Sandbox) -> None:
        self._all.discard(old)
        await old.close()
        delay = 0.5
        while not self._closed:
            try:
                fresh = await self._boot(old.slot)
            except SandboxBroken as exc:
                log.error("could not start a replacement sandbox; retrying", error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if self._closed:
                await fresh.close()
                return
            self._all.add(fresh)
            self._idle.put_nowait(fresh)
            return

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*self._running, return_exceptions=True)
        # Replacements are let finish, not cancelled: one cancelled mid-boot or mid-clean-up
        # left its runsc container behind for the next start to sweep. Having seen _closed,
        # each closes what it booted.
        await asyncio.gather(*self._replacing, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in list(self._all)), return_exceptions=True)
        self._all.clear()
