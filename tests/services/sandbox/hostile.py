"""Programs that go after the sandbox itself, and what a contained outcome looks like.

Shared by the runsc suite (test_hostile_processes.py) and pod mode (test_pod_mode.py), so
both check the same attacks the same way. Each program prints what it reached; the checks
say what it must not have reached.
"""

from __future__ import annotations

import textwrap

from tests.services.sandbox.leaks import run_number

__all__ = ["run_number"]

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


def check_thread_bomb(result: dict) -> None:
    # Threads count against the process limit (max_processes, 32 by default).
    assert result["status"] == "OK", result
    words = result["stdout"].split()
    assert words[0] == "stopped" and int(words[1]) < 64, result


# No newline ever, large writes: the cap must hold on bytes, not on lines.
STDERR_FLOOD = "import os\nwhile True:\n    os.write(2, b'e' * 1_000_000)\n"


def check_stderr_flood(result: dict, limit: int) -> None:
    assert result["status"] == "OUTPUT_LIMIT", result
    assert "output truncated" in result["stderr"]
    assert len(result["stderr"]) < limit + 200
    assert result["wall_ms"] < 5000


# Every other process's memory (read where its maps say it is mapped), its file descriptors
# (opened for reading and writing: the fork server's frame channel is among them), and its
# environment; then the run's own descriptors.
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


def check_proc_probe(result: dict, pod: bool = False) -> None:
    """In pod mode the service shares the kernel and /proc with the run, and gVisor (2022-12)
    lets any uid read its environ and reopen its stdin, which is a host file (the pod's
    /dev/null); nothing else (docs/sandbox.md, threat model)."""
    assert result["status"] == "OK", result
    lines = result["stdout"].splitlines()
    assert int(lines[0].split()[1]) >= 1, "the fork server at least is in /proc"
    assert not [line for line in lines if line.startswith("read memory")], result["stdout"]
    if not pod:
        assert not [line for line in lines if line.startswith("secret")], result["stdout"]
    opened = [line.split() for line in lines if line.startswith("opened")]
    # gVisor lets any uid reopen another process's /dev/null; nothing else may open.
    others = [o for o in opened if o[4] != "/dev/null" and not (pod and o[2] == "0" and o[4].startswith("host:"))]
    assert others == [], opened
    # stdin, stdout, stderr and the directory listing itself: nothing inherited.
    assert lines[-1] == "own [0, 1, 2] 4", lines[-1]


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


def check_ptrace(result: dict) -> None:
    assert result["status"] == "OK", result
    assert "attached" not in result["stdout"], result["stdout"]
    assert int(result["stdout"].split()[-1]) >= 1


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


def check_forged_frame(result: dict) -> None:
    assert (result["status"], result["exit_code"]) == ("RUNTIME_ERROR", 3), result
    assert '"forged-frame": true' in result["stdout"], "the frame comes back as the run's output"


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


def check_memory_stopped(result: dict, limit_mb: int) -> None:
    assert result["status"] == "MEMORY_LIMIT", result
    assert "all children done" not in result["stdout"]
    assert f"over its memory limit of {limit_mb} MiB" in result["stderr"], result


# Links from the run's scratch directory (and /tmp, /dev/shm where they are writable, as
# in a pod) to the scratch root, the parent directory, the fork server and /; a directory
# of the run's holding one more. POD_CANARY is a root-owned directory in pod mode.
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
