"""Shared fixtures: real Redis, real service processes on loopback, the micro model.

Every fixture starts the real thing (redis-server, `startctl serve NAME` processes) and
stops it after; nothing here stands in for a service. Session-scoped where starting is
slow (the vLLM engine takes ~40 s).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from startctl.processes import (
    LocalProcess,
    free_port,
    redis_process,
    service_process,
    wait_ready,
    wait_redis,
)
from startctl.stack import MICRO_MODEL, shared_machine_engine_env


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need runsc are skipped, with the reason, on a machine without it."""
    if shutil.which("runsc") is None:
        skip = pytest.mark.skip(reason="runsc (gVisor) not installed: apt-get install -y runsc")
        for item in items:
            if "runsc" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = redis_process(port, tmp_path_factory.mktemp("redis")).start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_redis(url, proc)
        yield url
    finally:
        proc.stop()


ServiceStarter = Callable[..., str]


@pytest.fixture(scope="session")
def service_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's services write their logs (`NAME.log`), for tests that read them."""
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def start_service(service_log_dir: Path) -> Iterator[ServiceStarter]:
    """Start `startctl serve NAME` with env settings; returns its address. Stopped at the end."""
    started: list[LocalProcess] = []
    log_dir = service_log_dir

    def start(name: str, env: dict[str, str] | None = None, timeout_s: float = 60.0) -> str:
        port = free_port()
        proc = service_process(name, port, env, log_dir=log_dir).start()
        started.append(proc)
        addr = f"127.0.0.1:{port}"
        wait_ready(proc, addr, timeout_s)
        return addr

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="session")
def generation_addr(start_service: ServiceStarter) -> str:
    """The generation service over real vLLM (CPU) with the micro model; started once."""
    return start_service(
        "generation",
        {
            "START_GENERATION_MODEL": str(MICRO_MODEL),
            "START_GENERATION_MAX_MODEL_LEN": "2048",
            # vLLM's CPU build sizes its KV cache from this (GiB); a shared machine needs it small.
            "VLLM_CPU_KVCACHE_SPACE": "1",
            **shared_machine_engine_env(),
        },
        timeout_s=300,
    )
