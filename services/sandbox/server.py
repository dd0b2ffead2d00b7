"""gRPC adapter of the sandbox service: `SandboxService` over a pool of warm gVisor sandboxes.

The servicer only validates (`validate.py`), calls the domain code (`executor.py`,
`testcases.py`) and converts results to messages. Run it with `startctl serve sandbox`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common import runtime
from services.common.errors import FailedPrecondition
from services.common.logs import get_logger
from services.common.settings import DEFAULT_PORTS, ServiceSettings
from services.sandbox import validate
from services.sandbox.bundle import BundleSpec
from services.sandbox.executor import Result, SandboxPool, Status, make_launcher
from services.sandbox.testcases import run_tests
from start.v1 import sandbox_pb2, sandbox_pb2_grpc

log = get_logger("sandbox.server")


class Settings(ServiceSettings):
    """Sandbox settings; every field is also the env var START_SANDBOX_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="START_SANDBOX_", extra="forbid")

    port: int = Field(DEFAULT_PORTS["sandbox"], ge=0, le=65535)
    isolation: Literal["runsc", "pod"] = Field(
        "runsc",
        description="runsc: a gVisor container per sandbox; pod: this pod already runs under gVisor.",
    )
    trusted: bool = Field(
        False, description="Run without gVisor when runsc is missing. Only for code you trust."
    )
    runsc_path: str = Field("runsc", description="The runsc binary (name on PATH or a path).")
    runsc_platform: Literal["ptrace", "kvm", "systrap"] = Field("ptrace", description="gVisor platform.")
    state_dir: Path = Field(Path("/tmp/start-sandbox"), description="Bundle and runsc state.")
    pool_size: int = Field(2, ge=1, le=256, description="Warm sandboxes (concurrent executions).")
    max_queue: int = Field(16, ge=0, le=100_000, description="Executions that may wait for a sandbox.")
    executions_per_sandbox: int = Field(200, ge=1, description="Executions before a sandbox is recycled.")
    start_timeout_s: float = Field(60.0, gt=0, description="Time a sandbox may take to boot.")
    default_timeout_s: float = Field(10.0, gt=0)
    max_timeout_s: float = Field(120.0, gt=0)
    default_memory_mb: int = Field(512, ge=16)
    max_memory_mb: int = Field(4096, ge=16)
    default_output_limit_bytes: int = Field(65536, ge=1)
    max_output_limit_bytes: int = Field(8 * 1024 * 1024, ge=1)
    max_code_bytes: int = Field(256 * 1024, ge=1)
    max_stdin_bytes: int = Field(16 * 1024 * 1024, ge=0)
    max_processes: int = Field(32, ge=1, description="Processes (and threads) one execution may run.")
    max_file_size_mb: int = Field(16, ge=1, description="Largest file an execution may write.")
    scratch_mb: int = Field(512, ge=16, description="In-memory scratch space of one sandbox.")
    max_tests: int = Field(512, ge=1, description="Test cases in one RunTests call.")
    preload: str = Field("numpy,sympy", description="Modules imported once per sandbox, comma-separated.")


def build_pool(settings: Settings) -> SandboxPool:
    """The pool the server and `startctl sandbox exec` share (same code path)."""
    spec = BundleSpec(
        preload=tuple(name for name in settings.preload.split(",") if name),
        scratch_mb=settings.scratch_mb,
    )
    launcher = make_launcher(
        settings.isolation,
        settings.trusted, settings.runsc_path, settings.state_dir, settings.runsc_platform, spec
    )
    return SandboxPool(
        launcher,
        size=settings.pool_size,
        max_queue=settings.max_queue,
        executions_per_sandbox=settings.executions_per_sandbox,
        start_timeout_s=settings.start_timeout_s,
    )


def status_pb(status: Status) -> int:
    return sandbox_pb2.ExecutionStatus.Value(f"EXECUTION_STATUS_{status.value}")


def result_pb(result: Result) -> sandbox_pb2.ExecuteResponse:
    return sandbox_pb2.ExecuteResponse(
        status=status_pb(result.status),
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        wall_ms=result.wall_ms,
    )


class SandboxServicer(sandbox_pb2_grpc.SandboxServiceServicer):
    def __init__(self, pool: SandboxPool, settings: Settings) -> None:
        self.pool = pool
        self.policy = validate.LimitPolicy(settings)

    async def Execute(self, request, context):  # noqa: ANN001, N802 - generated signature
        execution = validate.execution(request, self.policy)
        return result_pb(await self.pool.execute(execution))

    async def RunTests(self, request, context):  # noqa: ANN001, N802
        code, cases, limits = validate.run_tests(request, self.policy)
        verdicts = await run_tests(self.pool, code, cases, limits, request.stop_on_first_failure)
        results = [
            sandbox_pb2.TestResult(
                index=v.index,
                passed=v.passed,
                status=status_pb(v.status),
                stdout=v.stdout,
                stderr=v.stderr,
                wall_ms=v.wall_ms,
                reason=v.reason,
            )
            for v in verdicts
        ]
        all_passed = len(verdicts) == len(cases) and all(v.passed for v in verdicts)
        return sandbox_pb2.RunTestsResponse(results=results, all_passed=all_passed)


async def serve_forever(settings: Settings) -> None:
    try:
        pool = build_pool(settings)
    except FailedPrecondition as exc:
        raise SystemExit(f"sandbox: refusing to start: {exc.message}") from exc

    def register(server: grpc.aio.Server) -> list[str]:
        sandbox_pb2_grpc.add_SandboxServiceServicer_to_server(SandboxServicer(pool, settings), server)
        return [sandbox_pb2.DESCRIPTOR.services_by_name["SandboxService"].full_name]

    async def on_start(handle: runtime.ServerHandle) -> None:
        await pool.start()
        log.info("sandbox pool warm", size=settings.pool_size, isolated=pool.isolated)

    async def on_stop(handle: runtime.ServerHandle) -> None:
        await pool.close()

    await runtime.serve("sandbox", settings, register, on_start=on_start, on_stop=on_stop)


if __name__ == "__main__":
    asyncio.run(serve_forever(Settings()))
