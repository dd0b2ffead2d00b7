"""`isolation=pod`: the service itself runs in a gVisor container (a pod with RuntimeClass
gvisor) and its fork servers run beside it; every execution still gets its own uid, its own
empty network namespace and its own scratch directory. Checked by running the domain code
inside a real `runsc do` container, as the pod would run it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from services.common.errors import FailedPrecondition
from services.sandbox.bundle import BundleSpec
from services.sandbox.executor import make_launcher
from startctl.bench import hostile
from tests.services.sandbox import leaks

POD_SCRIPT = r'''
import asyncio, json, os
from services.sandbox.server import Settings, build_pool
from services.sandbox.executor import Execution, Limits

# In an image the interpreter is world-readable; on this host it lives under /root (0700).
# The chmod lands in runsc do's in-memory overlay, never on the host.
os.chmod("/root", 0o755)
PROBE = """
import os, socket
print(os.getuid(), os.getcwd())
try:
    socket.create_connection(("127.0.0.1", 1), timeout=2)
except OSError as exc:
    print("connect", type(exc).__name__)
print(len(socket.if_nameindex()), os.environ.get("SANDBOX_TEST_SECRET"))
"""

async def main():
    pool = build_pool(Settings(isolation="pod", pool_size=2, preload="", state_dir="/tmp/pod-state"))
    await pool.start()
    try:
        results = list(await asyncio.gather(*(pool.execute(Execution(PROBE)) for _ in range(2))))
        looping = Execution("while True: pass", limits=Limits(timeout_s=1, cpu_s=1))
        results.append(await pool.execute(looping))
    finally:
        await pool.close()
    print(json.dumps([r.as_dict() for r in results]))

asyncio.run(main())
'''


# Runs the given programs one after the other on a pool of one fork server.
POD_SEQUENCE_SCRIPT = r'''
import asyncio, json, os, sys
from services.sandbox.server import Settings, build_pool
from services.sandbox.executor import Execution, Limits

os.chmod("/root", 0o755)  # as in POD_SCRIPT

async def main():
    pool = build_pool(Settings(isolation="pod", pool_size=1, preload="", state_dir="/tmp/pod-state"))
    await pool.start()
    try:
        limits = Limits(timeout_s=60, cpu_s=60)
        results = [await pool.execute(Execution(code, limits=limits)) for code in json.loads(sys.argv[1])]
    finally:
        await pool.close()
    print(json.dumps([r.as_dict() for r in results]))

asyncio.run(main())
'''


# Runs [code, limits] pairs one after the other on a pool of one fork server, with a
# root-owned canary directory in the pod's /tmp for the symlink programs to aim at; the
# last line is the results and whether the canary is still whole.
POD_HOSTILE_SCRIPT = r'''
import asyncio, json, os, sys
from services.sandbox.server import Settings, build_pool
from services.sandbox.executor import Execution, Limits

os.chmod("/root", 0o755)  # as in POD_SCRIPT
CANARY = sys.argv[2]
os.makedirs(CANARY, mode=0o755)
open(CANARY + "/keep.txt", "w").write("kept")

async def main():
    pool = build_pool(Settings(isolation="pod", pool_size=1, preload="", state_dir="/tmp/pod-state"))
    await pool.start()
    try:
        results = []
        for code, limits in json.loads(sys.argv[1]):
            results.append((await pool.execute(Execution(code, limits=Limits(**limits)))).as_dict())
    finally:
        await pool.close()
    whole = os.path.isfile(CANARY + "/keep.txt") and os.listdir(CANARY) == ["keep.txt"]
    print(json.dumps({"results": results, "canary": whole}))

asyncio.run(main())
'''

# In the pod's environment, as the service's: no execution may read it.
POD_SECRET = "SANDBOX_TEST_SECRET"


def run_in_pod(tmp_path, script: str, *args: str) -> list[dict]:
    """Run a script as the sandbox pod would (root inside a gVisor container); its last line's JSON."""
    done = subprocess.run(
        ["runsc", "--root", str(tmp_path), "--network=none", "--ignore-cgroups", "do",
         sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", POD_SECRET: "s3"},
        stdin=subprocess.DEVNULL,  # as a pod's container has
    )
    assert done.returncode == 0, done.stderr[-8000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.runsc
@pytest.mark.slow
def test_pod_mode_gives_each_sandbox_its_own_uid_network_and_scratch(tmp_path):
    probes = run_in_pod(tmp_path, POD_SCRIPT)
    first, second, looping = probes
    assert first["status"] == second["status"] == "OK", probes
    uids = {first["stdout"].split()[0], second["stdout"].split()[0]}
    assert len(uids) == 2 and "0" not in uids, "each sandbox runs executions as its own unprivileged uid"
    for probe in (first, second):
        lines = probe["stdout"].splitlines()
        assert lines[1] == "connect ConnectionRefusedError"
        assert lines[2] == "1 None", "only a loopback of its own, nothing of the caller's environment"
    assert looping["status"] == "TIMEOUT"


def test_pod_mode_refuses_to_run_outside_gvisor(tmp_path):
    with pytest.raises(FailedPrecondition, match="not running under gVisor"):
        make_launcher("pod", False, "runsc", tmp_path, "ptrace", BundleSpec())


@pytest.mark.runsc
@pytest.mark.slow
def test_pod_mode_runs_find_nothing_of_the_run_before(tmp_path):
    # In a pod /tmp is writable by every uid and the IPC namespace is the pod's: both were
    # ways for one run to hand data to the next.
    leavers = [leaks.leave_in_code, leaks.leave_in_sysv_ipc, leaks.leave_in_posix_ipc_and_files]
    seeds = [leaks.new_seed() for _ in leavers]
    programs = []
    for leave, seed in zip(leavers, seeds, strict=True):
        programs += [leave(seed), leaks.search_everywhere(seed)]
    results = run_in_pod(tmp_path, POD_SEQUENCE_SCRIPT, json.dumps(programs))
    found = {}
    for leave, first, second in zip(leavers, results[::2], results[1::2], strict=True):
        assert first["status"] == second["status"] == "OK", results
        assert "made False" not in first["stdout"], first
        assert leaks.run_number(second["stdout"]) == leaks.run_number(first["stdout"]) + 1
        assert "scanned True" in second["stdout"], second
        if "found []" not in second["stdout"]:
            found[leave.__name__] = second["stdout"].splitlines()[1]
    assert found == {}, "a run found what the run before it left"
    assert "wrote /tmp" in results[4]["stdout"], "in a pod /tmp is writable: the clean-up must be what holds"


@pytest.mark.runsc
@pytest.mark.slow
def test_pod_mode_contains_programs_that_go_after_the_sandbox(tmp_path):
    # The same programs and checks as test_hostile_processes.py. In a pod the service and
    # the other fork servers share the kernel and /proc (gVisor lets any uid read another's
    # environ, hence no secret in the pod's environment), and /tmp and /dev/shm are writable,
    # so the clean-up meets the run's symlinks there: the checks' `pod=True` allowances.
    quick = {"timeout_s": 20, "cpu_s": 20}
    memory = {**quick, "memory_mb": hostile.MEMORY_LIMIT_MB}
    programs = [
        (hostile.THREAD_BOMB, quick),
        (hostile.STDERR_FLOOD, {**quick, "output_limit_bytes": hostile.FLOOD_LIMIT_BYTES}),
        (hostile.PROC_PROBE, quick),
        (hostile.PTRACE_EVERYONE, quick),
        (hostile.FORGED_FRAME, quick),
        (hostile.CHILDREN_OVER_THE_LIMIT, memory),
        (hostile.CHILDREN_UNDER_THE_LIMIT, memory),
        (hostile.PLANT_SYMLINKS, quick),
        (hostile.AFTER_SYMLINKS, quick),
    ]
    done = run_in_pod(tmp_path, POD_HOSTILE_SCRIPT, json.dumps(programs), hostile.POD_CANARY)
    results = done["results"]
    escaped = {
        "thread bomb": hostile.check_thread_bomb(results[0]),
        "stderr flood": hostile.check_stderr_flood(results[1]),
        "/proc probe": hostile.check_proc_probe(results[2], pod=True),
        "ptrace": hostile.check_ptrace(results[3]),
        "forged frame": hostile.check_forged_frame(results[4]),
        "memory across processes": hostile.check_memory_across_processes(results[5], results[6]),
        "planted symlinks": hostile.check_planted_symlinks(results[7], results[8], pod=True,
                                                          canary_whole=done["canary"]),
    }
    assert {name: why for name, why in escaped.items() if why} == {}
