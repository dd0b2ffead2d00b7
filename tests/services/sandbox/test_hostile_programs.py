"""Hostile programs are contained, reported with the right status, and the sandbox keeps
serving afterwards. Every test runs twice: through `startctl sandbox exec --json` and
through the gRPC service (see conftest.py)."""

from __future__ import annotations

import secrets
import socket
import threading
from pathlib import Path

import pytest

from tests.services.sandbox import leaks
from tests.services.sandbox.conftest import SECRET_ENV

pytestmark = pytest.mark.runsc


def test_infinite_loop_ignoring_sigterm_is_reported_as_timeout(sandbox):
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    result = sandbox.run(code, timeout_s=2)
    assert result["status"] == "TIMEOUT"
    assert 1500 <= result["wall_ms"] < 6000
    sandbox.still_serving()


def test_sleeping_past_the_wall_time_is_reported_as_timeout(sandbox):
    result = sandbox.run("import time\nprint('start', flush=True)\ntime.sleep(60)\n", timeout_s=1.5)
    assert result["status"] == "TIMEOUT"
    assert result["stdout"] == "start\n"
    assert result["wall_ms"] < 5000
    sandbox.still_serving()


def test_fork_bomb_is_contained_and_killed(sandbox):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = sandbox.run(code, timeout_s=2)
    # Each forked interpreter copies the pages it writes (reference counts): up to
    # max_processes of them may together pass the memory limit before the wall time.
    assert result["status"] in ("TIMEOUT", "MEMORY_LIMIT"), result
    sandbox.still_serving()


def test_memory_bomb_is_reported_as_memory_limit(sandbox):
    result = sandbox.run("x = bytearray(8 * 1024 ** 3)\nprint('allocated')\n", memory_mb=256)
    assert result["status"] == "MEMORY_LIMIT"
    assert "allocated" not in result["stdout"]
    sandbox.still_serving()


def test_slow_memory_creep_is_reported_as_memory_limit(sandbox):
    code = "import time\nchunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 ** 2))\n    time.sleep(0.001)\n"
    result = sandbox.run(code, memory_mb=200, timeout_s=10)
    assert result["status"] == "MEMORY_LIMIT"
    sandbox.still_serving()


def test_connection_to_a_service_on_the_host_loopback_fails(sandbox):
    banner = f"host-service-{secrets.token_hex(4)}"
    accepted: list[str] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        server.settimeout(30)
        try:
            conn, _ = server.accept()
            accepted.append("yes")
            conn.sendall(banner.encode())
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    code = (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "print(s.recv(100).decode())\n"
    )
    try:
        result = sandbox.run(code, timeout_s=10)
    finally:
        server.close()
    assert result["status"] == "RUNTIME_ERROR"
    assert banner not in result["stdout"]
    assert accepted == []
    sandbox.still_serving()


def test_host_files_are_not_readable(sandbox, tmp_path):
    secret, name = f"host-secret-{secrets.token_hex(8)}", secrets.token_hex(4)
    paths = [Path("/tmp") / f"start-sandbox-secret-{name}", Path("/root") / f".start-sandbox-{name}"]
    for path in paths:
        path.write_text(secret)
    targets = [*map(str, paths), "/etc/shadow", "/etc/hostname", "/root/.bash_history",
               str(Path(__file__).resolve()), "/work/main/pyproject.toml"]
    code = (
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        print(path, open(path).read())\n"
        "    except OSError as exc:\n"
        "        print(path, 'refused', type(exc).__name__)\n"
        "import os\nprint(sorted(os.listdir('/')))\n"
    )
    try:
        result = sandbox.run(code)
    finally:
        for path in paths:
            path.unlink()
    assert result["status"] == "OK", result
    assert secret not in result["stdout"]
    assert result["stdout"].count("refused") == len(targets)
    assert "'work'" not in result["stdout"] and "'root'" not in result["stdout"]
    sandbox.still_serving()


def test_no_process_environment_holds_the_callers_secret(sandbox):
    code = (
        "import glob, os\n"
        "print(dict(os.environ))\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        print(path, open(path, 'rb').read())\n"
        "    except OSError as exc:\n"
        "        print(path, 'refused', exc.errno)\n"
    )
    result = sandbox.run(code)
    assert result["status"] == "OK"
    assert "/proc/self/environ" in result["stdout"]
    for value in SECRET_ENV.values():
        assert value not in result["stdout"]
    assert "SANDBOX_TEST_SECRET" not in result["stdout"]
    sandbox.still_serving()


def test_writes_outside_scratch_fail_and_scratch_is_writable(sandbox):
    name = f"start-escape-{secrets.token_hex(6)}"
    targets = [f"/tmp/{name}", f"/{name}", f"/etc/{name}", f"/opt/python/lib/{name}", f"/scratch/{name}"]
    code = (
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, type(exc).__name__)\n"
        "open('own.txt', 'w').write('mine')\nprint('scratch ok', open('own.txt').read())\n"
    )
    result = sandbox.run(code)
    assert result["status"] == "OK"
    assert "wrote" not in result["stdout"]
    assert "scratch ok mine" in result["stdout"]
    assert not Path(f"/tmp/{name}").exists()
    sandbox.still_serving()


def test_output_flood_is_truncated_with_a_marker(sandbox):
    result = sandbox.run("while True:\n    print('x' * 1000)\n", output_limit=10_000, timeout_s=10)
    assert result["status"] == "OUTPUT_LIMIT"
    assert "output truncated" in result["stdout"]
    assert len(result["stdout"]) < 10_000 + 200
    sandbox.still_serving()


def test_invalid_utf8_output_is_returned_with_replacement_characters(sandbox):
    result = sandbox.run("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok \\xc3\\n')\n")
    assert result["status"] == "OK"
    assert "ok" in result["stdout"]
    assert "\ufffd" in result["stdout"]
    sandbox.still_serving()


def test_stack_overflow_is_a_runtime_error(sandbox):
    # With the recursion guard lifted, repr() of a deep list overflows the C stack itself.
    code = (
        "import sys\nsys.setrecursionlimit(10 ** 8)\n"
        "nested = []\nfor _ in range(2_000_000):\n    nested = [nested]\nprint(len(repr(nested)))\n"
    )
    result = sandbox.run(code, timeout_s=30, memory_mb=1024)
    assert result["status"] == "RUNTIME_ERROR", result
    assert result["exit_code"] != 0
    sandbox.still_serving()


def test_unbounded_recursion_is_a_runtime_error(sandbox):
    result = sandbox.run("def f(n):\n    return f(n + 1)\nf(0)\n")
    assert result["status"] == "RUNTIME_ERROR"
    assert "RecursionError" in result["stderr"]
    sandbox.still_serving()


def test_signals_sent_to_the_parent_or_everyone_do_not_reach_the_executor(sandbox):
    code = (
        "import os, signal\n"
        "for target in (os.getppid(), 1, -1):\n"
        "    try:\n"
        "        os.kill(target, signal.SIGKILL)\n"
        "    except OSError as exc:\n"
        "        print(target, type(exc).__name__)\n"
        "print('survived')\n"
    )
    result = sandbox.run(code)
    assert result["status"] == "OK", result
    assert "survived" in result["stdout"]
    sandbox.still_serving()


def test_background_processes_do_not_outlive_the_execution(sandbox):
    start = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        while True:\n"
        "            time.sleep(0.1)\n"
        "    os._exit(0)\n"
        "print('started', flush=True)\n"
    )
    result = sandbox.run(start, timeout_s=10)
    assert result["status"] == "OK"
    assert result["wall_ms"] < 5000, "a background process must not stretch the execution"
    count = (
        "import os\n"
        "me = os.getpid()\n"
        "others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != me\n"
        "          and os.stat('/proc/' + p).st_uid == os.getuid()]\n"
        "print('others', others)\n"
    )
    after = sandbox.run(count)
    assert after["stdout"] == "others []\n"
    sandbox.still_serving()


def test_files_left_in_scratch_do_not_reach_the_next_execution(sandbox):
    marker = f"left-{secrets.token_hex(4)}"
    first = sandbox.run(
        f"import os\nopen('{marker}', 'w').write('x')\nprint(os.path.abspath('{marker}'))\n"
    )
    assert first["status"] == "OK"
    left_at = first["stdout"].strip()
    second = sandbox.run(f"import os\nprint(os.path.exists({left_at!r}), os.listdir('.'))\n")
    assert second["stdout"] == "False []\n"
    sandbox.still_serving()


def test_big_files_and_filling_the_scratch_disk_fail_cleanly(sandbox):
    code = (
        "try:\n"
        "    open('big', 'wb').write(b'x' * 17 * 1024 * 1024)\n"
        "except OSError as exc:\n"
        "    print('file size', exc.errno)\n"
        "for i in range(1000):\n"
        "    try:\n"
        "        open(f'f{i}', 'wb').write(b'x' * 16_000_000)\n"
        "    except OSError as exc:\n"
        "        print('stopped', exc.errno)\n"
        "        break\n"
    )
    result = sandbox.run(code, timeout_s=60)
    assert result["status"] == "OK", result
    assert "file size 27" in result["stdout"], "EFBIG: one file is at most max_file_size_mb"
    assert "stopped 28" in result["stdout"], "ENOSPC: scratch space is bounded"
    after = sandbox.run("import shutil\nprint(shutil.disk_usage('.').used < 64 * 1024 * 1024)\n")
    assert after["stdout"] == "True\n"
    sandbox.still_serving()


# One run never sees the run before it (issue 14). These use the gRPC service's one warm
# sandbox only: a one-shot CLI sandbox has no run before it.
LEAVERS = {
    "code": leaks.leave_in_code,
    "module variable and output": leaks.leave_in_module_variable_and_output,
    "SysV shm, message queue, semaphore": leaks.leave_in_sysv_ipc,
    "POSIX message queue, /dev/shm, /tmp": leaks.leave_in_posix_ipc_and_files,
    "environment": leaks.leave_in_environment,
}


@pytest.mark.parametrize("left_in", list(LEAVERS))
def test_the_next_run_on_the_same_sandbox_finds_nothing_of_the_run_before(grpc_sandbox, left_in):
    seed = leaks.new_seed()
    first = grpc_sandbox.run(LEAVERS[left_in](seed))
    assert first["status"] == "OK", first
    assert "made False" not in first["stdout"], f"run A could not leave its marker: {first['stdout']}"
    second = grpc_sandbox.run(leaks.search_everywhere(seed), timeout_s=60)
    assert second["status"] == "OK", second
    assert leaks.run_number(second["stdout"]) == leaks.run_number(first["stdout"]) + 1, (
        "run B must be the next execution on run A's sandbox"
    )
    assert "scanned True" in second["stdout"], "run B must have read its own memory"
    assert "found []" in second["stdout"], f"run B found run A's marker ({left_in}): {second['stdout']}"
    grpc_sandbox.still_serving()
