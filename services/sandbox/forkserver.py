"""The executor that runs inside each warm sandbox: a fork server with sympy and numpy loaded.

It is the container's only process (PID 1 under gVisor) and talks to the host over its
stdin/stdout with length-prefixed JSON frames (`executor.Sandbox` is the other end).
It imports the heavy packages once, then forks the child for the next execution ahead of
time (a fork costs tens of ms under gVisor; paid between executions). That child:

- starts a new session (its own process group), so it and everything it spawns die together;
- gets its own IPC namespace (SysV shared memory, message queues, semaphores, POSIX
  message queues), which dies with it;
- gets a fresh, private scratch directory and an environment with nothing from the caller;
- gets rlimits (CPU seconds, address space, processes, file size, open files);
- drops to an unprivileged uid, so it can neither signal this server nor read its memory,
  nor leave anything writable behind outside its scratch directory;
- waits for its request, applies the request's limits and runs the code as `__main__`
  from the clean, pre-imported state of the fork.

Why children are forked from a zygote and not from this server: a child starts as a copy of
the memory of the process it is forked from, and this server has read every request (the
code, stdin) and every reply (the output). Dropping references is not enough, since freed
memory keeps its bytes and a program can read its own memory. So right after the preload,
before any request is read, the server forks a zygote: a template process that never
receives a request, a reply or any output. For each execution the server makes the child's
scratch directory and pipes and passes their ends to the zygote over a socketpair
(SCM_RIGHTS); the zygote forks the child with them and reports its pid, then its exit
status. The server writes the request into the child's pipe and reads its output, as
before; whatever it holds never reaches a child.

After the child exits (or hits its wall time or output cap) every process of the
unprivileged uid is killed and reaped, the scratch directory is removed, and so is anything
the uid made in the directories every uid may write to (a pod's /tmp and /dev/shm; under
runsc there are none), so nothing reaches the next execution. Anything odd (a survivor, a
failed clean-up) is reported as `clean: false` and the host retires this sandbox.

This file is stdlib-only on purpose: it is mounted read-only into the sandbox and run by
the sandbox's interpreter, never imported by the service.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import stat
import struct
import sys
import time
import traceback

# The uid executions run as. Under runsc each sandbox is its own kernel and uses nobody;
# fork servers sharing one kernel (a gVisor pod, trusted mode) get one uid each, so one
# server's clean-up never touches another's executions.
EXECUTION_UID = int(os.environ.get("START_EXECUTION_UID", "65534"))
SCRATCH_ROOT = os.environ.get("START_SCRATCH_ROOT", "/scratch")
# In a pod the network namespace is the pod's: each execution gets an empty one instead.
UNSHARE_NET = os.environ.get("START_UNSHARE_NET") == "1"
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
# How often the memory of all of an execution's processes together is measured.
MEMORY_POLL_S = 0.02
PRELOAD = [name for name in os.environ.get("START_PRELOAD", "").split(",") if name]
HEADER = struct.Struct(">I")
# What the zygote reports about a child: (pid, 0) once forked, then (pid, wait status).
CHILD_EVENT = struct.Struct(">ii")
# Directories any uid may write to. Those that are writable here (a pod's /tmp, /dev/shm)
# are swept of what the execution uid made; under runsc they are read-only or root's.
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock")


def read_exact(stream, size: int) -> bytes:  # noqa: ANN001 - a binary file object
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_frame(stream) -> dict | None:  # noqa: ANN001
    header = read_exact(stream, HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return json.loads(read_exact(stream, size))


def write_frame(stream, message: dict) -> None:  # noqa: ANN001
    body = json.dumps(message).encode()
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def preload() -> None:
    for name in PRELOAD:
        __import__(name)
    # sympy builds caches lazily; one small use warms the common paths for every child.
    if "sympy" in PRELOAD:
        import sympy

        sympy.simplify(sympy.Symbol("x") ** 2 - 1)


class Child:
    """An execution's process, forked ahead of time and waiting for its request on `req_w`."""

    def __init__(self, pid: int, scratch: str, req_w: int, out_r: int, err_r: int) -> None:
        self.pid = pid
        self.scratch = scratch
        self.req_w = req_w
        self.out_r = out_r
        self.err_r = err_r

    def start(self, req: dict) -> None:
        body = json.dumps(req).encode()
        with os.fdopen(self.req_w, "wb") as pipe:
            pipe.write(HEADER.pack(len(body)) + body)


class Zygote:
    """The template every child is forked from (see the module docstring for why).

    Forked from the server after the preload and before the first request; it only ever
    receives a scratch path and four file descriptors, so its memory, and every child's
    at fork time, is the preloaded state and nothing of any execution.
    """

    def __init__(self) -> None:
        self.channel, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:
            self.channel.close()
            zygote_main(theirs)
        theirs.close()

    def spawn(self, seq: int) -> Child:
        """The child for the next execution, with a fresh scratch directory and pipes."""
        scratch = os.path.join(SCRATCH_ROOT, f"run-{seq}")
        os.mkdir(scratch, 0o700)
        if os.geteuid() == 0:
            os.chown(scratch, EXECUTION_UID, EXECUTION_UID)
        stdin_path = os.path.join(SCRATCH_ROOT, f"stdin-{seq}")
        stdin_fd = os.open(stdin_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(stdin_path)
        req_r, req_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child_ends = [req_r, stdin_fd, out_w, err_w]
        try:
            socket.send_fds(self.channel, [scratch.encode()], child_ends)
        finally:
            for fd in child_ends:
                os.close(fd)
        pid, _ = self._event()
        return Child(pid, scratch, req_w, out_r, err_r)

    def exit_status(self, child: Child) -> int:
        """Wait for the zygote's word that the child exited (and was reaped); its wait status."""
        pid, status = self._event()
        if pid != child.pid:
            raise RuntimeError(f"zygote reported pid {pid}, expected {child.pid}")
        return status

    def _event(self) -> tuple[int, int]:
        data = self.channel.recv(CHILD_EVENT.size, socket.MSG_WAITALL)
        if len(data) < CHILD_EVENT.size:
            raise RuntimeError("the zygote is gone")
        return CHILD_EVENT.unpack(data)


def zygote_main(channel: socket.socket) -> None:
    """In the zygote: fork a child per message, report its pid and its exit. Never returns."""
    try:
        # Nothing of the server's but the channel: not the host's pipes, not /dev/null's copy.
        os.closerange(3, channel.fileno())
        os.closerange(channel.fileno() + 1, 1 << 16)
        while True:
            message, fds, _, _ = socket.recv_fds(channel, 4096, 4)
            if not message:  # the server is gone
                os._exit(0)
            base_vm = vm_size()
            pid = os.fork()
            if pid == 0:
                channel.close()
                child_main(message.decode(), base_vm, *fds)
            for fd in fds:
                os.close(fd)
            channel.sendall(CHILD_EVENT.pack(pid, 0))
            _, status = os.waitpid(pid, 0)
            channel.sendall(CHILD_EVENT.pack(pid, status))
    except BaseException:  # noqa: BLE001 - the server sees the channel close and gives up
        os._exit(1)


def child_main(scratch: str, base_vm: int, req_fd: int, stdin_fd: int, out_w: int, err_w: int) -> None:
    """In the forked child: confine, wait for the request, run the code. Never returns."""
    try:
        os.setsid()
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(req_fd, 3)
        os.dup2(stdin_fd, 4)
        os.closerange(5, 1 << 16)
        os.chdir(scratch)
        # A fresh IPC namespace: the SysV and POSIX IPC objects of this execution are its
        # own and go with it. Needs root (CAP_SYS_ADMIN), like the uid drop below.
        namespaces = (CLONE_NEWIPC if os.geteuid() == 0 else 0) | (CLONE_NEWNET if UNSHARE_NET else 0)
        if namespaces:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(namespaces) != 0:
                raise OSError(ctypes.get_errno(), f"unshare({namespaces:#x}) failed")
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(EXECUTION_UID)
            os.setuid(EXECUTION_UID)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        with os.fdopen(3, "rb") as pipe:
            req = read_frame(pipe)
        if req is None:  # the server went away before using this child
            os._exit(0)
        os.write(4, req["stdin"].encode())
        os.lseek(4, 0, os.SEEK_SET)
        os.dup2(4, 0)
        os.close(4)
        mem = base_vm + req["memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = max(1, int(req["cpu_s"] + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_NPROC, (req["max_processes"], req["max_processes"]))
        fsize = req["file_size_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.environ.clear()
        os.environ.update(
            PATH="/opt/python/bin:/usr/bin:/bin",
            HOME=scratch,
            TMPDIR=scratch,
            LANG="C.UTF-8",
            PYTHONIOENCODING="utf-8",
            OPENBLAS_NUM_THREADS="1",
        )
        sys.stdin = open(0, closefd=False, errors="replace")  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        sys.argv = ["main.py"]
    except BaseException as exc:  # noqa: BLE001 - a failed confinement must not run code
        os.write(2, f"sandbox: could not confine the execution: {exc!r}\n".encode())
        os._exit(125)
    code = 0
    try:
        program = compile(req["code"], "main.py", "exec")
        namespace = {"__name__": "__main__", "__file__": os.path.join(scratch, "main.py")}
        namespace["__builtins__"] = __builtins__
        exec(program, namespace)  # noqa: S102 - running the program is the point
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - reported like the interpreter does
        try:
            # Skip this file's frame: the traceback starts at the program, as with `python`.
            kind, value, trace = sys.exc_info()
            traceback.print_exception(kind, value, trace.tb_next if trace else None)
        except BaseException:  # noqa: BLE001 - e.g. MemoryError while formatting
            os.write(2, b"MemoryError\n")
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - a closed or broken pipe
        pass
    os._exit(code)


def sweep() -> bool:
    """Kill and reap every process of the unprivileged uid; True when none is left.

    Processes that left the execution's process group (setsid, double fork) are found by
    uid in /proc; rounds repeat until a fork bomb bounded by RLIMIT_NPROC is gone.
    """
    for _ in range(50):
        # Zombies are not survivors, but those that are this server's must go: they would
        # count against the next execution's RLIMIT_NPROC (the same uid).
        reap()
        found = survivors()
        if not found:
            reap()  # a process survivors() saw as a zombie is reaped now, if it is this server's
            return True
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
        reap()
    return False


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def survivors() -> list[int]:
    """Processes of the execution uid, but for zombies another process must reap.

    A zombie holds no memory, file or IPC object and runs nothing, and it is not always
    this server's to reap: in a pod, orphans go to the pod's PID 1 (gVisor lets only PID 1
    be a child subreaper), and counting them retired every sandbox after a run that left one.
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != EXECUTION_UID:
                    continue
                with open(f"/proc/{entry}/stat") as stat_file:
                    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                    state, ppid = stat_file.read().rsplit(")", 1)[1].split()[:2]
            except (OSError, IndexError, ValueError):
                continue
            # Only a zombie held by another PID 1 (the pod's service) is left; this server's
            # own (and those still on their way to it) are counted until `sweep` reaps them.
            if not (state == "Z" and int(ppid) == 1 and os.getpid() != 1):
                found.append(int(entry))
    return found


def resident_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS); 0 once it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_memory(base_rss: int) -> int:
    """The resident memory of the execution uid's processes beyond the zygote's shared pages.

    gVisor counts the pages a forked process shares with the zygote in each process's
    VmRSS, so each is charged what it holds beyond `base_rss` (the execution's process
    before it ran anything). A process that exec'd a new program holds none of those
    pages: it is charged its size less `base_rss`, at most that much under.
    """
    return sum(max(0, resident_bytes(pid) - base_rss) for pid in survivors())


def vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_one(zygote: Zygote, child: Child, req: dict, shared: list[str]) -> dict:
    limit = req["output_limit_bytes"]
    out_r, err_r = child.out_r, child.err_r
    buffers = {out_r: bytearray(), err_r: bytearray()}
    selector = selectors.DefaultSelector()
    for fd in buffers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    # The zygote's report of the child's exit ends the select at once.
    selector.register(zygote.channel, selectors.EVENT_READ)
    # The child waits for its request: what it holds now is the zygote's (shared) pages,
    # which every process the program forks shares too. Only growth beyond it is the run's.
    base_rss = resident_bytes(child.pid)
    memory_cap = req["memory_mb"] * 1024 * 1024
    started = time.monotonic()
    child.start(req)
    deadline = started + req["timeout_s"]
    status, wait_status, over, memory_used = None, None, False, 0
    next_poll = started + MEMORY_POLL_S
    while True:
        now = time.monotonic()
        if now >= deadline:
            status = "TIMEOUT"
            break
        # Once the program has exited, take what is already in the pipes and stop:
        # a background process holding them open must not stretch the execution.
        events = selector.select(0 if wait_status is not None else min(deadline - now, MEMORY_POLL_S))
        got_output = False
        for key, _ in events:
            if key.fd == zygote.channel.fileno():
                wait_status = zygote.exit_status(child)
                selector.unregister(zygote.channel)
                continue
            chunk = os.read(key.fd, 65536)
            if not chunk:
                selector.unregister(key.fd)
                continue
            got_output = True
            buffers[key.fd] += chunk
            if len(buffers[key.fd]) > limit:
                over = True
        if over:
            status = "OUTPUT_LIMIT"
            break
        if wait_status is not None and not got_output:
            break
        # RLIMIT_AS bounds each process; this bounds them together (a program that forks
        # twenty children, each under the limit).
        if wait_status is None and now >= next_poll:
            next_poll = now + MEMORY_POLL_S
            memory_used = run_memory(base_rss)
            if memory_used > memory_cap:
                status = "MEMORY_LIMIT"
                break
    wall_ms = (time.monotonic() - started) * 1000
    if wait_status is None:
        # The process group, and the child itself in case it has not reached setsid yet.
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError):
                kill(child.pid, signal.SIGKILL)
        wait_status = zygote.exit_status(child)
    clean = sweep()
    selector.close()
    for fd in buffers:
        os.close(fd)
    try:
        shutil.rmtree(child.scratch)
    except OSError:
        clean = False
    clean = remove_leftovers(shared) and clean

    exit_code = os.waitstatus_to_exitcode(wait_status)
    if status == "MEMORY_LIMIT":
        if buffers[err_r] and not buffers[err_r].endswith(b"\n"):
            buffers[err_r] += b"\n"
        buffers[err_r] += (
            f"sandbox: the execution's processes together used {memory_used >> 20} MiB, over its "
            f"memory limit of {req['memory_mb']} MiB; all of them were killed\n"
        ).encode()
    stdout, stderr = bytes(buffers[out_r]), bytes(buffers[err_r])
    if status is None:
        status = classify(exit_code, stderr)
    return {
        "status": status,
        "exit_code": exit_code,
        "stdout": base64.b64encode(stdout[:limit]).decode(),
        "stderr": base64.b64encode(stderr[:limit]).decode(),
        "truncated_stdout": len(stdout) > limit,
        "truncated_stderr": len(stderr) > limit,
        "wall_ms": wall_ms,
        "clean": clean,
    }


def shared_writable_dirs() -> list[str]:
    """The directories of SHARED_WRITABLE that an execution could actually write to here."""
    found = []
    for path in SHARED_WRITABLE:
        try:
            mode, flags = os.stat(path).st_mode, os.statvfs(path).f_flag
        except OSError:
            continue
        if mode & stat.S_IWOTH and not flags & os.ST_RDONLY:
            found.append(path)
    return found


def remove_leftovers(directories: list[str]) -> bool:
    """Remove what the execution uid made in the shared writable directories; True when all went.

    The uid can only create entries where it may write: in these directories, in what it
    made there (removed whole), and in world-writable directories below them (searched).
    """
    clean = True
    pending = list(directories)
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:  # gone, or a host socket gVisor will not stat: not the uid's
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            if info.st_uid == EXECUTION_UID:
                try:
                    if is_dir:
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                except OSError:
                    clean = False
            elif is_dir and info.st_mode & stat.S_IWOTH:
                pending.append(entry.path)
    return clean


def classify(exit_code: int, stderr: bytes) -> str:
    if exit_code == 0:
        return "OK"
    if exit_code == 125 and stderr.startswith(b"sandbox: could not confine"):
        return "SANDBOX_ERROR"
    # SIGXCPU: the CPU-time rlimit; a silent SIGKILL: the kernel at the hard CPU limit.
    if exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and not stderr.strip()):
        return "TIMEOUT"
    tail = stderr.rstrip().rsplit(b"\n", 1)[-1]
    if tail.startswith(b"MemoryError") or b"Cannot allocate memory" in tail:
        return "MEMORY_LIMIT"
    return "RUNTIME_ERROR"


def main() -> None:
    # The frame channel is a private copy of stdin/stdout; fds 0-2 themselves are pointed
    # at /dev/null so that nothing printed by a library can corrupt the protocol.
    channel_in = os.fdopen(os.dup(0), "rb", buffering=0)
    channel_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.makedirs(SCRATCH_ROOT, mode=0o711, exist_ok=True)
    preload()
    sweep()  # a previous server with this uid may have left executions behind
    shared = shared_writable_dirs()
    remove_leftovers(shared)
    zygote = Zygote()  # before the first request is read: see the module docstring
    seq = 1
    child = zygote.spawn(seq)
    write_frame(channel_out, {"ready": True, "pid": os.getpid()})
    while True:
        request = read_frame(channel_in)
        if request is None:
            return
        try:
            reply = run_one(zygote, child, request, shared)
        except Exception as exc:  # noqa: BLE001 - reported; the host retires this sandbox
            reply = {"status": "SANDBOX_ERROR", "error": repr(exc), "clean": False}
        write_frame(channel_out, reply)
        seq += 1
        child = zygote.spawn(seq)


if __name__ == "__main__":
    main()
