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


@pytest.mark.runsc
@pytest.mark.slow
def test_pod_mode_gives_each_sandbox_its_own_uid_network_and_scratch(tmp_path):
    done = subprocess.run(
        ["runsc", "--root", str(tmp_path), "--network=none", "--ignore-cgroups", "do",
         sys.executable, "-c", POD_SCRIPT],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "SANDBOX_TEST_SECRET": "s3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    probes = json.loads(done.stdout.strip().splitlines()[-1])
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
