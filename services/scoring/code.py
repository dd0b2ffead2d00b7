"""Grade a code answer: its final python block run against the problem's tests by the
sandbox service (`RunTests` over gRPC), correct only when every test passes.

The scoring service never runs model code itself; gVisor isolation lives in one place.
A sandbox that cannot be reached is an error for the caller to retry, never a silent
"incorrect" that would drop a good trace from a dataset.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from services.common.channels import aio_channel
from services.common.errors import Unavailable
from services.scoring.extract import final_python_block
from services.scoring.graders import Verdict
from start.v1 import common_pb2, sandbox_pb2, sandbox_pb2_grpc


class SandboxGrader:
    """Runs code answers through the sandbox at `addr` with per-test limits."""

    def __init__(self, addr: str, test_timeout_s: float, memory_mb: int, rpc_timeout_s: float) -> None:
        self.addr = addr
        self.test_timeout_s = test_timeout_s
        self.memory_mb = memory_mb
        self.rpc_timeout_s = rpc_timeout_s
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> sandbox_pb2_grpc.SandboxServiceStub:
        if self._channel is None:
            self._channel = aio_channel(self.addr)
        return sandbox_pb2_grpc.SandboxServiceStub(self._channel)

    async def grade(self, response: str, tests: list[common_pb2.TestCase]) -> Verdict:
        started = time.perf_counter()
        # The regex over a large response is CPU work: off the event loop.
        code = await asyncio.to_thread(final_python_block, response)
        if code is None:
            return Verdict(False, "", "no answer: no python block in the final answer")
        request = sandbox_pb2.RunTestsRequest(
            code=code,
            tests=tests,
            timeout_s=self.test_timeout_s,
            memory_mb=self.memory_mb,
            stop_on_first_failure=True,
        )
        try:
            reply = await self._stub().RunTests(request, timeout=self.rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                f"sandbox at {self.addr} (START_SANDBOX_ADDR) failed: {exc.code().name}: {exc.details()}"
            ) from exc
        wall_ms = (time.perf_counter() - started) * 1000
        if reply.all_passed and reply.results:
            return Verdict(True, code, "", wall_ms)
        failed = next((r for r in reply.results if not r.passed), None)
        if failed is None:
            return Verdict(False, code, "tests failed: the sandbox ran no test", wall_ms)
        status = sandbox_pb2.ExecutionStatus.Name(failed.status).removeprefix("EXECUTION_STATUS_")
        detail = f": {failed.reason}" if failed.reason else ""
        return Verdict(False, code, f"tests failed: test {failed.index} {status}{detail}", wall_ms)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
