"""The grader pool enforces the per-answer budget from outside and keeps serving."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.scoring.graders import MATH, grade
from services.scoring.pool import GraderPool, GradingTimeout


async def test_answer_that_hangs_sympy_is_cut_off_and_the_next_one_is_graded() -> None:
    pool = GraderPool(workers=1, timeout_s=3.0, worker_memory_mb=2048)
    try:
        assert (await pool.run(grade, MATH, r"\boxed{\frac12}", "0.5")).correct
        started = time.perf_counter()
        with pytest.raises(GradingTimeout, match="timeout"):
            # Nothing in our cheap checks stops this one: sympy computes the factorial of ten million.
            await pool.run(grade, MATH, r"\boxed{(10^{7})!}", "1")
        assert time.perf_counter() - started < 20
        # The killed worker was replaced: the pool still grades.
        assert (await asyncio.wait_for(pool.run(grade, MATH, r"\boxed{x^2-1}", "(x-1)(x+1)"), 30)).correct
    finally:
        pool.close()


async def test_parallel_answers_each_get_their_own_budget() -> None:
    pool = GraderPool(workers=2, timeout_s=3.0)
    try:
        results = await asyncio.gather(
            pool.run(grade, MATH, r"\boxed{(10^{7})!}", "1"),
            pool.run(grade, MATH, r"\boxed{(x+1)^2}", "x^2+2x+1"),
            return_exceptions=True,
        )
        assert isinstance(results[0], GradingTimeout)
        assert results[1].correct
    finally:
        pool.close()
