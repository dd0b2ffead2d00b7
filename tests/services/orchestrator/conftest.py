"""Fixtures of the orchestrator tests: a real `startctl worker` process, a Redis database per test module."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from startctl.processes import LocalProcess

WorkerStarter = Callable[[dict[str, str]], LocalProcess]


@pytest.fixture(scope="session")
def redis_db(redis_url: str) -> Callable[[int], str]:
    """Another (emptied) database of the session's Redis, so modules do not see each other's queues."""

    def url_of(db: int) -> str:
        url = redis_url.rsplit("/", 1)[0] + f"/{db}"
        redis.Redis.from_url(url).flushdb()
        return url

    return url_of


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[WorkerStarter]:
    """Start `startctl worker` processes with env settings; each is stopped at the end."""
    started: list[LocalProcess] = []

    def start(env: dict[str, str]) -> LocalProcess:
        argv = [sys.executable, "-m", "startctl", "worker", "--concurrency", "4"]
        proc = LocalProcess(f"worker-{len(started)}", argv, env, log_dir=tmp_path).start()
        started.append(proc)
        deadline = time.monotonic() + 60
        while "ready." not in proc.tail(200):
            if not proc.alive():
                raise RuntimeError(f"worker exited during start:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready after 60 s:\n{proc.tail()}")
            time.sleep(0.2)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()
