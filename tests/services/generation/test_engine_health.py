"""Health of the generation service over its engine's life: loading, serving, dead.

These start their own server process (not the session's shared one) because the last step
kills its engine. The file sorts before test_generation_service.py, so in a normal run its
engine is stopped before the shared one starts: one engine at a time on a small machine.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import channel
from start.v1 import common_pb2, generation_pb2, generation_pb2_grpc
from startctl.processes import LocalProcess, free_port, service_process, wait_ready
from startctl.stack import MICRO_MODEL, shared_machine_engine_env

pytestmark = pytest.mark.slow


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SHORT = generation_pb2.GenerateRequest(prompt="Wait,", sampling=common_pb2.SamplingParams(max_tokens=2))


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[LocalProcess, str]]:
    port = free_port()
    env = {
        "START_GENERATION_MODEL": str(MICRO_MODEL),
        "START_GENERATION_MAX_MODEL_LEN": "512",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "START_GENERATION_HEALTH_INTERVAL_S": "0.2",
        **shared_machine_engine_env(),
    }
    proc = service_process("generation", port, env, log_dir=tmp_path).start()
    try:
        yield proc, f"127.0.0.1:{port}"
    finally:
        proc.stop()


def first_health_answer(proc: LocalProcess, ch: grpc.Channel, timeout_s: float = 120) -> int:
    """The first status the server gives once its port is open (importing vLLM takes a while)."""
    stub = health_pb2_grpc.HealthStub(ch)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.alive(), proc.tail()
        try:
            return stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError:
            time.sleep(0.2)
    raise TimeoutError(f"no health answer in {timeout_s} s:\n{proc.tail()}")


def engine_process(server: LocalProcess) -> psutil.Process:
    assert server.proc is not None
    children = psutil.Process(server.proc.pid).children(recursive=True)
    (engine,) = [p for p in children if p.name().startswith("VLLM::EngineCor")]
    return engine


def test_health_tells_a_loading_engine_from_a_dead_one(own_server: tuple[LocalProcess, str]) -> None:
    proc, addr = own_server
    with channel(addr) as ch:
        stub = generation_pb2_grpc.GenerationServiceStub(ch)

        # Loading: the port answers at once, but the engine takes tens of seconds.
        assert first_health_answer(proc, ch) == NOT_SERVING
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(SHORT, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "loading" in err.value.details()

        wait_ready(proc, addr, timeout_s=300)
        assert stub.Generate(SHORT, timeout=60).usage.completion_tokens == 2

        # Dead: the engine process is gone; the server stays up to say so.
        engine_process(proc).send_signal(signal.SIGKILL)
        health = health_pb2_grpc.HealthStub(ch)
        deadline = time.monotonic() + 30
        while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != NOT_SERVING:
            assert time.monotonic() < deadline, "health still SERVING after the engine died"
            time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(SHORT, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "died" in err.value.details()


def test_server_whose_model_cannot_load_exits_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    env = {"START_GENERATION_MODEL": str(missing), "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = service_process("generation", free_port(), env, log_dir=tmp_path).start()
    try:
        assert proc.proc is not None
        assert proc.proc.wait(timeout=120) == 1
        assert str(missing) in proc.tail(80)
    finally:
        proc.stop()
