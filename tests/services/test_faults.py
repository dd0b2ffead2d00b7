"""Faults on the embedded default: each service SIGKILLed in the middle of a job, then
started again as a supervisor (Kubernetes) would; every episode must still finish DONE.

One laptop stack (`LocalStack`: Redis, the five services with vLLM on the micro model and
runsc, a worker) serves the whole module. A job of a few hint-infer episodes on the demo
problems runs once unfaulted (the baseline), then once per fault; each case prints how much
longer its job took than the baseline: the time the fault cost. Generation goes last, as
its engine takes a minute or two to come back.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from start.v1 import orchestrator_pb2 as opb
from startctl.episodes import hint_infer_options
from startctl.job_cmd import FrontDoor
from startctl.local import DEMO_PROBLEMS
from startctl.stack import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.runsc]

PROBLEMS = 4
JOB_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(run_dir=tmp_path_factory.mktemp("faults")) as started:
        yield started


def submit(stack: LocalStack, tag: str) -> str:
    request = opb.SubmitJobRequest(
        problem_set=opb.ProblemSetRef(url=str(DEMO_PROBLEMS)),
        arm=opb.ARM_HINT_INFER,
        options=hint_infer_options(True),
        results_url=str(Path(stack.run_dir) / "jobs" / tag),
        limit=PROBLEMS,
    )
    door = FrontDoor(stack.addr("orchestrator"))
    try:
        return door.submit(request).job.id
    finally:
        door.close()


def job_now(stack: LocalStack, job_id: str) -> opb.Job | None:
    """The job as the front door sees it; None while the front door is down."""
    door = FrontDoor(stack.addr("orchestrator"))
    try:
        return door.get(job_id)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return None
        raise
    finally:
        door.close()


def wait_finished(stack: LocalStack, job_id: str) -> opb.Job:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = job_now(stack, job_id)
        if job is not None and job.status == opb.JOB_STATUS_DONE:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not finished after {JOB_TIMEOUT_S} s: {job_now(stack, job_id)}")


def assert_every_episode_done(job: opb.Job) -> None:
    counts = job.counts
    assert counts.episodes == PROBLEMS
    assert counts.done == PROBLEMS, f"lost or failed episodes: {counts}"
    assert counts.failed == 0 and counts.pending == 0 and counts.running == 0


def step_retries(stack: LocalStack) -> int:
    """Steps the worker has retried on a fault so far (its log says each)."""
    return stack.process("worker").log_path.read_text(errors="replace").count("retrying step")


@pytest.fixture(scope="module")
def baseline_s(stack: LocalStack) -> float:
    started = time.monotonic()
    job = wait_finished(stack, submit(stack, "baseline"))
    seconds = time.monotonic() - started
    assert_every_episode_done(job)
    print(f"\nbaseline: {PROBLEMS} hint-infer episodes in {seconds:.1f} s")
    return seconds


@pytest.mark.parametrize("service", ["sandbox", "scoring", "hints", "orchestrator", "generation"])
def test_sigkilled_service_loses_no_episode(stack: LocalStack, baseline_s: float, service: str) -> None:
    started = time.monotonic()
    job_id = submit(stack, f"kill-{service}")
    # Mid-run: a third of the way through the unfaulted job.
    time.sleep(baseline_s / 3)
    before = job_now(stack, job_id)
    assert before is not None and before.status == opb.JOB_STATUS_RUNNING, "the job ended before the fault"
    retries_before = step_retries(stack)
    victim = stack.process(service)
    os.kill(victim.proc.pid, signal.SIGKILL)  # the process alone, as a crash: not its group
    while victim.alive():  # not reaped: restart() then kills what is left of its group
        time.sleep(0.05)
    down_at = time.monotonic()
    if service != "orchestrator":
        # Down until a step meets the fault: on a fast machine a quick restart can fall
        # between two calls to the service, and then nothing was tested (CI once saw it).
        while step_retries(stack) == retries_before and time.monotonic() - down_at < 15:
            time.sleep(0.1)
    down_s = time.monotonic() - down_at
    stack.restart(service)
    restart_s = time.monotonic() - down_at - down_s
    job = wait_finished(stack, job_id)
    seconds = time.monotonic() - started
    assert_every_episode_done(job)
    if service != "orchestrator":  # the workers never call the front door
        assert step_retries(stack) > retries_before, "no step met the fault: it was not mid-run"
    print(
        f"\nSIGKILL {service} at {baseline_s / 3:.0f} s ({before.counts.done}/{PROBLEMS} done): down {down_s:.1f} s "
        f"until a step met the fault, restarted in "
        f"{restart_s:.1f} s; job finished in {seconds:.1f} s against {baseline_s:.1f} s unfaulted: "
        f"time lost {seconds - baseline_s:.1f} s"
    )
