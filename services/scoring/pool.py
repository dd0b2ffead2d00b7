"""A pool of grader processes with a time budget per answer, enforced from outside.

sympy can spin in C code where no signal or thread can stop it, so each answer is graded
in a worker process and, when its budget runs out, that worker is killed and replaced
(pebble's ProcessPool does exactly this) while the caller gets a `timeout` verdict. Workers
are forked from a forkserver that has already imported sympy and math-verify, so a
replacement is ready in milliseconds, and each worker has an address-space cap so that a
runaway big-number computation fails with MemoryError instead of starving the machine.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pebble import ProcessExpired, ProcessPool

# Imported by the forkserver once; every worker starts with them loaded and warm.
_PRELOAD = ["services.scoring.worker_boot"]


class GradingTimeout(Exception):
    """The answer's grading ran past its budget; its worker was killed and replaced."""


class GraderCrashed(Exception):
    """The worker died while grading (killed by the OS, out of memory in C code...)."""


def _limit_worker_memory(memory_mb: int) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class GraderPool:
    """`workers` processes; `run(fn, *args)` awaits fn(*args) within `timeout_s`."""

    def __init__(self, workers: int, timeout_s: float, worker_memory_mb: int = 0) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        self.timeout_s = timeout_s
        self._pool = ProcessPool(
            max_workers=workers,
            initializer=_limit_worker_memory,
            initargs=(worker_memory_mb,),
            context=context,
        )

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        future = self._pool.schedule(fn, args=args, timeout=self.timeout_s)
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout as exc:
            raise GradingTimeout(f"timeout: grading took longer than {self.timeout_s:g} s") from exc
        except ProcessExpired as exc:
            raise GraderCrashed(f"grader crashed: worker exited with {exc.exitcode}") from exc

    def close(self) -> None:
        """Stop the workers (running tasks are cancelled)."""
        self._pool.stop()
        self._pool.join()
