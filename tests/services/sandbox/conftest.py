"""Two ways into the same sandbox, so every hostile test runs against both:

- `cli`: `startctl sandbox exec FILE --json` as a subprocess (a one-shot sandbox);
- `grpc`: a real `startctl serve sandbox` process (one warm sandbox, so what one execution
  leaves behind would be seen by the next) called over gRPC.

Both processes carry a secret in their environment; no execution may ever see it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.channels import channel
from start.v1 import sandbox_pb2, sandbox_pb2_grpc

SECRET_ENV = {"SANDBOX_TEST_SECRET": "caller-secret-7f3a9c1e"}


@dataclass
class Runner:
    """Run code, get the `--json` shape back; `still_serving` proves nothing broke."""

    kind: str
    state_dir: Path
    addr: str = ""

    def run(self, code: str, timeout_s: float = 5.0, memory_mb: int = 0, output_limit: int = 0,
            stdin: str = "") -> dict:
        if self.kind == "cli":
            return self._run_cli(code, timeout_s, memory_mb, output_limit, stdin)
        with channel(self.addr) as ch:
            reply = sandbox_pb2_grpc.SandboxServiceStub(ch).Execute(
                sandbox_pb2.ExecuteRequest(
                    code=code, stdin=stdin, timeout_s=timeout_s, memory_mb=memory_mb,
                    output_limit_bytes=output_limit,
                ),
                timeout=timeout_s + 60,
            )
        return {
            "status": sandbox_pb2.ExecutionStatus.Name(reply.status).removeprefix("EXECUTION_STATUS_"),
            "exit_code": reply.exit_code,
            "stdout": reply.stdout,
            "stderr": reply.stderr,
            "wall_ms": reply.wall_ms,
        }

    def _run_cli(self, code: str, timeout_s: float, memory_mb: int, output_limit: int, stdin: str) -> dict:
        program = self.state_dir / "program.py"
        program.write_text(code)
        stdin_file = self.state_dir / "stdin.txt"
        stdin_file.write_text(stdin)
        argv = [
            sys.executable, "-m", "startctl", "sandbox", "exec", str(program), "--json",
            "--timeout", str(timeout_s), "--memory", str(memory_mb), "--output-limit", str(output_limit),
            "--stdin", str(stdin_file),
        ]
        env = {**os.environ, **SECRET_ENV, "START_SANDBOX_STATE_DIR": str(self.state_dir)}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout_s + 120)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1, f"--json must print exactly one line, got: {done.stdout!r}"
        return json.loads(lines[0])

    def still_serving(self) -> None:
        result = self.run("print(6 * 7)")
        assert (result["status"], result["stdout"]) == ("OK", "42\n"), result
        if self.kind == "cli":
            # A one-shot run must not leave a sandbox behind.
            listed = subprocess.run(
                ["runsc", "--root", str(self.state_dir / "runsc"), "list", "-quiet"],
                capture_output=True, text=True,
            )
            assert listed.stdout.strip() == "", f"containers left behind: {listed.stdout}"


@pytest.fixture(scope="module")
def grpc_sandbox(start_service, tmp_path_factory) -> Runner:
    state = tmp_path_factory.mktemp("sandbox-grpc")
    addr = start_service(
        "sandbox",
        {
            **SECRET_ENV,
            "START_SANDBOX_STATE_DIR": str(state),
            "START_SANDBOX_POOL_SIZE": "1",
            "START_SANDBOX_EXECUTIONS_PER_SANDBOX": "100",
        },
        timeout_s=180,
    )
    return Runner("grpc", state, addr)


# A CLI run boots a sandbox each time (seconds on a loaded machine): marked slow.
@pytest.fixture(params=[pytest.param("cli", marks=pytest.mark.slow), "grpc"])
def sandbox(request, tmp_path_factory) -> Runner:
    if request.param == "grpc":
        return request.getfixturevalue("grpc_sandbox")
    return Runner("cli", tmp_path_factory.mktemp("sandbox-cli"))
