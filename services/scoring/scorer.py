"""The scoring flow shared by the gRPC server and `startctl score batch`.

A batch is graded concurrently: math and multiple-choice items in the grader pool (each
within its time budget), code items through the sandbox. Identical items (RFT samples often
end in the same answer) are graded once: an LRU cache across batches and shared futures
within one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from prometheus_client import Counter

from services.common.errors import DeadlineExceeded
from services.scoring import graders
from services.scoring.code import SandboxGrader
from services.scoring.graders import CODE, Verdict
from services.scoring.pool import GraderCrashed, GraderPool, GradingTimeout
from services.scoring.repetition import RepetitionThresholds, RepetitionVerdict, detect_repetition
from start.v1 import common_pb2

ITEMS = Counter(
    "start_scoring_items_total",
    "Items graded, by task type and outcome (correct, or the reason's first words: timeout, mismatch...)",
    ["task_type", "outcome"],
)

# Responses up to this size get the no-sympy fast path in the serving process.
QUICK_MAX_CHARS = 64 * 1024


@dataclass
class Item:
    task_type: str  # one of graders.TASK_TYPES
    response: str
    reference: str = ""
    tests: list[common_pb2.TestCase] = field(default_factory=list)


CacheKey = tuple[str, bytes]


def _cache_key(item: Item) -> CacheKey:
    """Task type and a digest of response and reference: the cache holds no 2 MB strings."""
    digest = hashlib.blake2b(item.response.encode(), digest_size=16)
    digest.update(b"\0" + item.reference.encode())
    return item.task_type, digest.digest()


class Scorer:
    """Grades batches; owns the worker pool and the sandbox client."""

    def __init__(
        self,
        pool: GraderPool,
        sandbox: SandboxGrader,
        repetition: RepetitionThresholds,
        cache_size: int = 100_000,
    ) -> None:
        self.pool = pool
        self.sandbox = sandbox
        self.repetition = repetition
        self.cache_size = cache_size
        self._cache: OrderedDict[CacheKey, Verdict] = OrderedDict()

    async def score(self, items: list[Item]) -> list[Verdict]:
        in_flight: dict[CacheKey, asyncio.Task[Verdict]] = {}
        tasks = []
        for item in items:
            if item.task_type == CODE:
                tasks.append(asyncio.ensure_future(self.sandbox.grade(item.response, item.tests)))
                continue
            key = _cache_key(item)
            if key not in in_flight:
                in_flight[key] = asyncio.ensure_future(self._grade_cached(key, item))
            tasks.append(in_flight[key])
        try:
            verdicts = list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
        for item, verdict in zip(items, verdicts, strict=True):
            ITEMS.labels(item.task_type, "correct" if verdict.correct else verdict.reason.split(":")[0]).inc()
        return verdicts

    async def _grade_cached(self, key: CacheKey, item: Item) -> Verdict:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return Verdict(cached.correct, cached.extracted, cached.reason, 0.0)
        started = time.perf_counter()
        # Most answers need no sympy (plain numbers, letters, no box, refused as hostile):
        # graded here in microseconds. Only short responses, so the event loop never stalls.
        try:
            quick = (
                graders.quick_grade(item.task_type, item.response, item.reference)
                if len(item.response) <= QUICK_MAX_CHARS
                else None
            )
        except Exception:  # noqa: BLE001 - the worker's full grader reports it with a reason
            quick = None
        if quick is not None:
            verdict = Verdict(quick.correct, quick.extracted, quick.reason, (time.perf_counter() - started) * 1000)
            self._remember(key, verdict)
            return verdict
        try:
            verdict = await self.pool.run(graders.grade, item.task_type, item.response, item.reference)
        except (GradingTimeout, GraderCrashed) as exc:
            # Not cached: a busy machine, not the answer, may have caused it.
            return Verdict(False, "", str(exc), (time.perf_counter() - started) * 1000)
        self._remember(key, verdict)
        return verdict

    def _remember(self, key: CacheKey, verdict: Verdict) -> None:
        self._cache[key] = verdict
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def detect_repetition(self, text: str) -> RepetitionVerdict:
        try:
            return await self.pool.run(detect_repetition, text, self.repetition)
        except (GradingTimeout, GraderCrashed) as exc:
            # No verdict is better than a wrong "not repetitive": the caller decides.
            raise DeadlineExceeded(f"repetition check: {exc}") from exc

    async def close(self) -> None:
        self.pool.close()
        await self.sandbox.close()
