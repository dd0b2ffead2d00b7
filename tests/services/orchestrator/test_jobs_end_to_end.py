"""Jobs end to end: every service a real process (vLLM CPU with the micro model, runsc,
scoring, hints), Celery over a real Redis, real `startctl worker`s, the front door and its
jobs controller, results as real Parquet files.

Proves what a user relies on: a problem file runs as a job from the CLI and over gRPC, its
results open with pandas and `datasets`, a job can be cancelled, and, while the job runs,
workers SIGKILLed twice, Redis SIGKILLed and restarted on its append-only file and the
front door restarted lose nothing: every (problem, sample) is in the results exactly once
and no episode is left stuck.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from services.common.channels import channel
from services.orchestrator import results
from services.orchestrator import store as keys
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc
from startctl.processes import LocalProcess, free_port, redis_process, service_process, wait_ready, wait_redis
from training.micro.problems import make_problems

pytestmark = [pytest.mark.slow, pytest.mark.runsc]

# Short bounds so faults heal within the test (a stalled step is queued again after 10 s),
# and few episodes in flight so admission keeps working through the faults.
FAST_RECOVERY = {
    "START_ORCHESTRATOR_JOB_MAX_IN_FLIGHT": "8",
    "START_ORCHESTRATOR_RECONCILE_AFTER_S": "10",
    "START_ORCHESTRATOR_RESULTS_FLUSH_S": "1",
    "START_ORCHESTRATOR_RESULTS_FLUSH_EPISODES": "8",
}
SHORT = pb.EpisodeOptions(sampling=pb.SamplingParams(max_tokens=300), max_total_tokens=800)


class Platform:
    """Redis, the front door and workers as processes the test can kill and restart."""

    def __init__(self, peers: dict[str, str], run_dir: Path) -> None:
        self.run_dir = run_dir
        self.redis_port, self.orchestrator_port = free_port(), free_port()
        self.env = {
            **peers,
            **FAST_RECOVERY,
            "START_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "START_ORCHESTRATOR_RESULTS_URL": str(run_dir / "results"),
        }
        self.env["START_ORCHESTRATOR_ADDR"] = self.addr = f"127.0.0.1:{self.orchestrator_port}"
        self.redis: LocalProcess | None = None
        self.front_door: LocalProcess | None = None
        self.workers: list[LocalProcess] = []

    def start_redis(self) -> None:
        self.redis = redis_process(self.redis_port, self.run_dir / "redis").start()
        wait_redis(self.env["START_REDIS_URL"], self.redis)

    def start_front_door(self) -> None:
        self.front_door = service_process(
            "orchestrator", self.orchestrator_port, self.env, log_dir=self.run_dir / "logs"
        ).start()
        wait_ready(self.front_door, self.addr, 60)

    def start_worker(self) -> LocalProcess:
        argv = [sys.executable, "-m", "startctl", "worker", "--concurrency", "8"]
        worker = LocalProcess(f"worker-{len(self.workers)}", argv, self.env, log_dir=self.run_dir / "logs").start()
        self.workers.append(worker)
        deadline = time.monotonic() + 60
        while "ready." not in worker.tail(200):
            assert worker.alive(), worker.tail()
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.2)
        return worker

    @staticmethod
    def kill(proc: LocalProcess) -> None:
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait()

    def stop(self) -> None:
        for proc in [*self.workers, self.front_door, self.redis]:
            if proc is not None:
                proc.stop()

    def stub(self) -> orchestrator_pb2_grpc.OrchestratorServiceStub:
        return orchestrator_pb2_grpc.OrchestratorServiceStub(channel(self.addr))


@pytest.fixture(scope="module")
def peers(start_service, generation_addr: str) -> dict[str, str]:
    sandbox = start_service("sandbox")
    return {
        "START_GENERATION_ADDR": generation_addr,
        "START_HINTS_ADDR": start_service("hints"),
        "START_SANDBOX_ADDR": sandbox,
        "START_SCORING_ADDR": start_service("scoring", {"START_SANDBOX_ADDR": sandbox}),
    }


def content_in_logs(frame, log_dirs: list[Path]) -> list[str]:  # noqa: ANN001
    """Questions, tool code and tool outputs of a job's results found in any log line above
    debug (services/common/logs.py keeps them out)."""
    secrets = set(frame["question"])
    for spans in frame["spans"]:
        secrets |= {s["text"].strip() for s in spans if s["kind"] in ("tool_code", "tool_output")}
    secrets = {s for s in secrets if len(s) >= 12}  # long enough not to occur by chance
    assert secrets, "the job produced questions and tool calls to look for"
    logs = "\n".join(p.read_text(errors="replace") for d in log_dirs for p in d.glob("*.log"))
    assert "rpc" in logs or "listening" in logs, "the services' logs were read"
    return sorted(s[:60] for s in secrets if s in logs)


@pytest.fixture
def platform(peers: dict[str, str], tmp_path: Path) -> Iterator[Platform]:
    running = Platform(peers, tmp_path)
    try:
        running.start_redis()
        running.start_front_door()
        yield running
    finally:
        running.stop()


def write_problem_file(path: Path, count: int, seed: int) -> list:
    problems = make_problems(count, seed=seed, split="test")
    with path.open("w") as out:
        for p in problems:
            out.write(json.dumps({**p.to_record(), "source": p.kind, "difficulty": "micro"}) + "\n")
    return problems


def get_job(stub, job_id: str) -> opb.Job | None:  # noqa: ANN001
    """The job, or None while the front door or Redis is down (being restarted)."""
    try:
        return stub.GetJob(opb.GetJobRequest(job_id=job_id), timeout=10)
    except grpc.RpcError:
        return None


def wait_until(platform: Platform, job_id: str, done: Callable[[opb.Job], bool], timeout_s: float) -> opb.Job:
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(platform.stub(), job_id)
        if job is not None and done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck: {job}"
        time.sleep(0.5)


def finished(job: opb.Job) -> int:
    return job.counts.done + job.counts.failed + job.counts.cancelled


def test_job_from_the_cli_writes_parquet_results_pandas_and_datasets_read(
    platform: Platform, tmp_path: Path, service_log_dir: Path
) -> None:
    problem_file = tmp_path / "problems.jsonl"
    problems = write_problem_file(problem_file, 6, seed=21)
    platform.start_worker()
    out = tmp_path / "cli-results"
    command = [
        sys.executable, "-m", "startctl", "job", "submit", "--problems", str(problem_file), "--arm", "hint-infer",
        "--out", str(out), "--max-tokens", "300", "--max-total-tokens", "800", "--wait", "--json",
        "--addr", platform.addr, "--timeout", "400",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=500, env={**os.environ, **platform.env})
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["episodes"] == 6 and summary["done"] + summary["failed"] == 6
    assert summary["accuracy"] > 0, "hint-infer solves some micro problems"

    import datasets
    import pandas as pd

    frame = pd.read_parquet(summary["results"])
    assert sorted(frame["problem_id"]) == sorted(p.id for p in problems)
    assert set(frame["source"]) == {p.kind for p in problems}, "problem-set columns are carried through"
    assert frame["tool_calls"].sum() > 0
    loaded = datasets.load_dataset("parquet", data_files=f"{summary['results']}/*.parquet", split="train")
    assert loaded.num_rows == 6 and "spans" in loaded.column_names
    job_dir = Path(summary["results"]).parent
    manifest = json.loads((job_dir / "manifest.json").read_text())
    assert manifest["arm"] == "hint-infer" and manifest["hint_library"].startswith("math@")
    assert manifest["problem_set_sha256"] and manifest["code_revision"]
    assert (job_dir / "report.md").exists()
    leaked = content_in_logs(frame, [service_log_dir, platform.run_dir / "logs"])
    assert not leaked, f"problem or tool content in the logs above debug: {leaked}"

    # Over gRPC: the episodes page by page, and one of them whole from the results.
    stub = platform.stub()
    first = stub.ListEpisodes(opb.ListEpisodesRequest(job_id=summary["job_id"], page_size=4), timeout=30)
    rest = stub.ListEpisodes(
        opb.ListEpisodesRequest(job_id=summary["job_id"], page_size=4, page_token=first.next_page_token), timeout=30
    )
    listed = [e.episode_id for e in [*first.episodes, *rest.episodes]]
    assert len(listed) == len(set(listed)) == 6 and not rest.next_page_token
    whole = stub.GetEpisode(opb.GetEpisodeRequest(episode_id=listed[0]), timeout=30)
    assert whole.status == pb.EPISODE_STATUS_DONE and whole.spans[0].kind == pb.SPAN_KIND_PROMPT


def test_a_cancelled_job_stops_and_records_its_episodes_as_cancelled(platform: Platform, tmp_path: Path) -> None:
    problem_file = tmp_path / "problems.jsonl"
    write_problem_file(problem_file, 30, seed=22)
    stub = platform.stub()
    request = opb.SubmitJobRequest(
        problem_set=opb.ProblemSetRef(url=str(problem_file)), arm=opb.ARM_GREEDY, options=SHORT
    )
    job = stub.SubmitJob(request, timeout=60).job
    # No worker yet: the admitted episodes' first steps wait in the queue, so the cancel
    # reaches every one of them (a fast episode could otherwise finish first).
    wait_until(platform, job.id, lambda j: j.counts.running == 8 and j.counts.pending == 22, 60)
    stub.CancelJob(opb.CancelJobRequest(job_id=job.id), timeout=10)
    platform.start_worker()
    final = wait_until(platform, job.id, lambda j: j.status == opb.JOB_STATUS_CANCELLED, 120)
    assert (final.counts.done, final.counts.cancelled, final.counts.pending, final.counts.running) == (0, 30, 0, 0)
    table = results.read_results(final.results_url)
    assert table.num_rows == final.counts.written == 8, "episodes never started are not run after a cancel"
    assert set(table["status"].to_pylist()) == {"cancelled"}, "queued steps stop and are recorded as cancelled"
    assert all(error.startswith("cancelled with its job") for error in table["error"].to_pylist())


def test_a_job_survives_killed_workers_a_redis_crash_and_a_front_door_restart(
    platform: Platform, tmp_path: Path
) -> None:
    problem_file = tmp_path / "problems.jsonl"
    problems = write_problem_file(problem_file, 60, seed=23)
    request = opb.SubmitJobRequest(
        problem_set=opb.ProblemSetRef(url=str(problem_file)), arm=opb.ARM_GREEDY, options=SHORT,
        idempotency_key="fault-test",
    )
    job = platform.stub().SubmitJob(request, timeout=60).job
    worker = platform.start_worker()

    wait_until(platform, job.id, lambda j: finished(j) >= 5, 300)
    platform.kill(worker)  # 1: a worker dies mid-step
    worker = platform.start_worker()

    wait_until(platform, job.id, lambda j: finished(j) >= 18, 300)
    platform.kill(platform.redis)  # 2: Redis dies; back 3 s later on its append-only file
    time.sleep(3)
    platform.start_redis()

    wait_until(platform, job.id, lambda j: finished(j) >= 30, 300)
    platform.kill(platform.front_door)  # 3: the front door (and its controller) dies; a new one starts
    platform.start_front_door()
    resubmitted = platform.stub().SubmitJob(request, timeout=60)
    assert not resubmitted.created and resubmitted.job.id == job.id, "the same key is the same job"

    wait_until(platform, job.id, lambda j: finished(j) >= 42, 300)
    platform.kill(worker)  # 4: another worker dies
    platform.start_worker()

    final = wait_until(platform, job.id, lambda j: j.status == opb.JOB_STATUS_DONE, 400)
    assert final.counts.written == final.counts.episodes == 60
    table = results.read_results(final.results_url)
    indexes = sorted(table["problem_index"].to_pylist())
    assert indexes == list(range(60)), "every problem exactly once in the results"
    assert sorted(table["problem_id"].to_pylist()) == sorted(p.id for p in problems)
    assert set(table["status"].to_pylist()) <= {"done", "failed"}
    failed = [e for e, s in zip(table["error"].to_pylist(), table["status"].to_pylist(), strict=True) if s != "done"]
    assert len(failed) <= 3, f"faults should be retried, not fail episodes: {failed}"

    import redis

    client = redis.Redis.from_url(platform.env["START_REDIS_URL"])
    left = [i for i in client.smembers(keys.INFLIGHT) if i.decode().startswith(job.id)]
    assert not left, f"episodes stuck in flight: {left}"
    assert not list(client.scan_iter(f"{keys.episode_key(job.id)}*")), "written episodes left Redis"


def test_solve_streams_one_problem_with_its_tool_calls_over_grpc(platform: Platform) -> None:
    (problem,) = make_problems(1, seed=3, split="test")
    options = pb.EpisodeOptions(
        sampling=pb.SamplingParams(max_tokens=400), hints_enabled=True, reflection_hint_probability=1.0,
        max_think_hints=1, max_total_tokens=1200,
    )
    request = opb.SolveRequest(
        problem=pb.Problem(question=problem.question, reference=problem.reference, task_type=pb.TASK_TYPE_MATH),
        options=options,
    )
    events = list(platform.stub().Solve(request, timeout=300))
    kinds = [e.kind for e in events]
    assert kinds[-1] == opb.SOLVE_EVENT_KIND_FINAL and kinds.count(opb.SOLVE_EVENT_KIND_FINAL) == 1
    for kind in (opb.SOLVE_EVENT_KIND_MODEL_DELTA, opb.SOLVE_EVENT_KIND_HINT, opb.SOLVE_EVENT_KIND_TOOL_OUTPUT):
        assert kind in kinds
    episode = events[-1].episode
    assert episode.status == pb.EPISODE_STATUS_DONE and episode.tool_calls >= 1
    with pytest.raises(grpc.RpcError) as caught:
        list(platform.stub().Solve(opb.SolveRequest(problem=pb.Problem(question=" ")), timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "problem.question" in caught.value.details()
