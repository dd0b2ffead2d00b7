"""`startctl job`: run the recipe over a whole problem set, follow it, read its results.

    startctl job submit --problems data/micro/eval.jsonl --arm hint-infer --out runs/jobs --wait
    startctl job watch JOB_ID          a progress bar: rate, ETA, accuracy so far
    startctl job list | cancel JOB_ID | results JOB_ID

Every command talks to the orchestrator's gRPC front door (`--addr`, the one `startctl up`
serves by default). `submit --local` starts the embedded platform for the job, as `demo`
does, and stops it when the job is done. The front door reads the problem set and writes
the results itself, so paths are made absolute here; a cluster's front door reads URLs
(s3://, gs://) instead.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from services.common.channels import channel
from services.common.settings import DEFAULT_PORTS
from services.orchestrator import results
from services.orchestrator.jobs import ARM_NAMES
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc
from startctl.consoles import readable_console
from startctl.episodes import reachable
from startctl.processes import stop_children_on_signals
from startctl.stack import LocalStack, new_run_dir

app = typer.Typer(help="Jobs: a problem set run in one arm, results as Parquet.", no_args_is_help=True)
console = Console()
wide = readable_console()

DEFAULT_ADDR = f"127.0.0.1:{DEFAULT_PORTS['orchestrator']}"
ARMS = {name: arm for arm, name in ARM_NAMES.items()}
FINISHED = (opb.JOB_STATUS_DONE, opb.JOB_STATUS_CANCELLED)
# The longest WatchJob the orchestrator grants by default (START_ORCHESTRATOR_MAX_WATCH_TIMEOUT_S).
WATCH_WINDOW_S = 3600
ADDR = typer.Option(DEFAULT_ADDR, "--addr", help="Orchestrator address (from `startctl up`).")
MODEL = typer.Option("", "--model", help="With --local: the model directory to serve (default: the micro model).")


class FrontDoor:
    """The orchestrator's job RPCs, with the deadlines a person at a terminal expects."""

    def __init__(self, addr: str) -> None:
        self._channel = channel(addr)
        self.stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)

    def submit(self, request: opb.SubmitJobRequest) -> opb.SubmitJobResponse:
        return self.stub.SubmitJob(request, timeout=600)

    def get(self, job_id: str) -> opb.Job:
        return self.stub.GetJob(opb.GetJobRequest(job_id=job_id), timeout=30)

    def episodes(self, job_id: str, full: bool = False, limit: int = 0) -> tuple[list, list[pb.Episode]]:
        """The job's episodes in (problem, sample) order: (summaries, whole episodes when `full`)."""
        summaries: list[opb.EpisodeSummary] = []
        whole: list[pb.Episode] = []
        token = ""
        while True:
            size = 1000 if not limit else min(1000, limit - len(summaries))
            request = opb.ListEpisodesRequest(job_id=job_id, page_size=size, page_token=token, full=full)
            page = self.stub.ListEpisodes(request, timeout=120)
            summaries.extend(page.episodes)
            whole.extend(page.full)
            token = page.next_page_token
            if not token or (limit and len(summaries) >= limit):
                return summaries, whole

    def watch(self, job_id: str, timeout_s: float, interval_s: float = 1.0) -> Iterator[opb.Job]:
        """The job's states until it ends or `timeout_s` passes (then DEADLINE_EXCEEDED). A
        watch longer than the orchestrator allows in one call (`WATCH_WINDOW_S`) is several."""
        deadline = time.monotonic() + timeout_s
        while True:
            window = min(WATCH_WINDOW_S, deadline - time.monotonic())
            request = opb.WatchJobRequest(job_id=job_id, timeout_s=max(window, interval_s), interval_s=interval_s)
            try:
                yield from self.stub.WatchJob(request, timeout=window + 30)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED or deadline - time.monotonic() < interval_s:
                    raise

    def close(self) -> None:
        self._channel.close()


@contextmanager
def _front_door(addr: str, local: bool, model: str = "") -> Iterator[FrontDoor]:
    """The front door at addr, or with `local` one of an embedded platform serving `model`
    (default: the micro model) for as long as the block runs."""
    if local:
        console.log("starting the platform locally for this job (the engine takes about a minute)")
        stack = LocalStack(run_dir=new_run_dir("job"), on_status=lambda m: console.log(m))
        if model:
            if not Path(model, "config.json").is_file():
                console.print(f"[red]--model {model}[/]: not a model directory (no config.json)")
                raise typer.Exit(2)
            stack.model = Path(model).resolve()
        with stop_children_on_signals(), stack:
            door = FrontDoor(stack.addr("orchestrator"))
            try:
                yield door
            finally:
                door.close()
        return
    if not reachable(addr):
        console.print(f"[red]no orchestrator at {addr}[/]: run `startctl up` in another terminal, or pass --local")
        raise typer.Exit(2)
    door = FrontDoor(addr)
    try:
        yield door
    finally:
        door.close()


def _grpc_errors(func):  # noqa: ANN001, ANN202
    """Print a front door's refusal (bad row, unknown job...) as one line, exit 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            return func(*args, **kwargs)
        except grpc.RpcError as exc:
            console.print(f"[red]{exc.code().name}[/]: {exc.details()}")
            raise typer.Exit(2) from exc

    return wrapper


# The front door reads problem sets and writes results itself: it needs locations it can open.
_url = results.absolute


def job_request(
    problems: str, arm: str, results_url: str, *, format_: str = "", samples: int = 0, temperature: float = 0.0,
    top_p: float = 0.0, max_tokens: int = 0, max_total_tokens: int = 0, think_hints: int = 0, seed: int = 0,
    limit: int = 0, skip_bad_rows: bool = False, shuffle_seed: int = 0, key: str = "",
) -> opb.SubmitJobRequest:
    """The SubmitJob request of `job submit` and `eval`: zeros take the arm's or the service's default."""
    return opb.SubmitJobRequest(
        problem_set=opb.ProblemSetRef(
            url=_url(problems), format=format_, skip_bad_rows=skip_bad_rows, shuffle_seed=shuffle_seed
        ),
        arm=ARMS[arm],
        samples=samples,
        options=pb.EpisodeOptions(
            sampling=pb.SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens),
            max_think_hints=think_hints,
            max_total_tokens=max_total_tokens,
            seed=seed,
        ),
        idempotency_key=key,
        results_url=results_url,
        limit=limit,
    )


def announce(job: opb.Job, verb: str) -> None:
    """One line on what was submitted, and every row the problem set's reader skipped."""
    console.print(f"job [bold]{job.id}[/] {verb}: {job.counts.problems} problems x {job.samples} samples "
                  f"= {job.counts.episodes} episodes ({ARM_NAMES[job.arm]}); results in {job.results_url}")
    for skipped in job.skipped:
        console.print(f"[yellow]skipped row {skipped.row}[/] field {skipped.field}: {skipped.message}")


@app.command()
@_grpc_errors
def submit(
    problems: str = typer.Option(..., "--problems", help="Problem set: JSONL, Parquet, CSV, HF dataset dir; or a URL."),
    arm: str = typer.Option("hint-infer", help="greedy | hint-infer | sample."),
    out: str = typer.Option("runs/jobs", help="Results root (a directory or URL); the job writes a folder in it."),
    format_: str = typer.Option("", "--format", help="start|math500|aime|gpqa|livecodebench (default: detected)."),
    samples: int = typer.Option(0, help="Samples per problem (0: the arm's default, 16 for sample)."),
    temperature: float = typer.Option(0.0, help="Sampling temperature (0: the arm's default)."),
    top_p: float = typer.Option(0.0, "--top-p", help="Nucleus cut (0: the arm's default)."),
    max_tokens: int = typer.Option(0, help="Tokens per generation call at most (0: no per-call cap)."),
    max_total_tokens: int = typer.Option(0, help="Token budget of an episode (0: the service default)."),
    think_hints: int = typer.Option(0, help="Hints before </think>, at most (0: the arm's default)."),
    seed: int = typer.Option(0, help="Seed of the hint policy and of sampling."),
    limit: int = typer.Option(0, help="Run only the first N problems (0: all)."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Run the good rows; record the bad ones."),
    shuffle_seed: int = typer.Option(0, help="Seed of the GPQA choice shuffle (recorded)."),
    key: str = typer.Option("", help="Idempotency key: the same key again is the same job (resumes it)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the job until it ends."),
    json_out: bool = typer.Option(False, "--json", help="With --wait: end with one JSON object."),
    local: bool = typer.Option(False, "--local", help="Start the embedded platform for this job."),
    model: str = MODEL,
    timeout: float = typer.Option(24 * 3600, help="Seconds --wait follows the job at most."),
    addr: str = ADDR,
) -> None:
    """Submit a job: a problem set run in one arm (each problem x sample one episode)."""
    if arm not in ARMS:
        raise typer.BadParameter(f"unknown arm {arm!r}; use one of {', '.join(ARMS)}")
    if local:
        wait = True  # the embedded platform stops when the command ends
    request = job_request(
        problems, arm, _url(out), format_=format_, samples=samples, temperature=temperature, top_p=top_p,
        max_tokens=max_tokens, max_total_tokens=max_total_tokens, think_hints=think_hints, seed=seed, limit=limit,
        skip_bad_rows=skip_bad_rows, shuffle_seed=shuffle_seed, key=key,
    )
    with _front_door(addr, local, model) as door:
        reply = door.submit(request)
        job = reply.job
        announce(job, "submitted" if reply.created else "already known (same key): following")
        if not wait:
            console.print(f"follow it with: startctl job watch {job.id}")
            return
        job = follow(door, job.id, timeout)
    if json_out:
        print(json.dumps(job_summary(job)))
    if job.counts.episodes and job.counts.failed == job.counts.episodes:
        raise typer.Exit(1)


def follow(door: FrontDoor, job_id: str, timeout: float) -> opb.Job:
    """A progress bar over the job's WatchJob stream until it ends; the last Job."""
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[accuracy]}"),
    )
    job = door.get(job_id)
    started, start_finished = time.monotonic(), _finished(job)
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(job_id, total=job.counts.episodes, rate="", accuracy="")
        for job in door.watch(job_id, timeout_s=timeout):
            finished = _finished(job)
            elapsed = time.monotonic() - started
            rate = (finished - start_finished) / elapsed if elapsed > 0 else 0.0
            progress.update(
                task,
                completed=finished,
                rate=f"{rate:.2f} ep/s",
                accuracy=f"accuracy {job.accuracy:.1%} ({job.counts.correct}/{job.counts.done})"
                + (f", {job.counts.failed} failed" if job.counts.failed else ""),
            )
    console.print(_job_table([job]))
    if job.results_url:
        console.print(f"results: {results.join(job.results_url, results.RESULTS_DIR)}  "
                      f"report: {results.join(job.results_url, 'report.md')}")
    return job


def _finished(job: opb.Job) -> int:
    return job.counts.done + job.counts.failed + job.counts.cancelled


def job_summary(job: opb.Job) -> dict:
    """The one JSON object `--wait --json` ends with."""
    return {
        "job_id": job.id,
        "status": opb.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower(),
        "problems": job.counts.problems,
        "episodes": job.counts.episodes,
        "done": job.counts.done,
        "failed": job.counts.failed,
        "cancelled": job.counts.cancelled,
        "written": job.counts.written,
        "accuracy": job.accuracy,
        "tokens": job.counts.tokens,
        "tool_calls": job.counts.tool_calls,
        "results": results.join(job.results_url, results.RESULTS_DIR),
        "report": results.join(job.results_url, "report.md"),
    }


def _job_table(jobs: list[opb.Job]) -> Table:
    table = Table(title="jobs")
    for column in ("job", "status", "arm", "episodes", "done", "failed", "cancelled", "written", "accuracy",
                   "tokens/episode", "tool calls/episode", "results"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        finished = max(1, _finished(job))
        table.add_row(
            job.id, opb.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower(), ARM_NAMES.get(job.arm, "?"),
            str(job.counts.episodes), str(job.counts.done), str(job.counts.failed), str(job.counts.cancelled),
            str(job.counts.written), f"{job.accuracy:.1%}", f"{job.counts.tokens / finished:.0f}",
            f"{job.counts.tool_calls / finished:.2f}", job.results_url,
        )
    return table


@app.command()
@_grpc_errors
def watch(
    job_id: str = typer.Argument(..., help="The job's id."),
    timeout: float = typer.Option(24 * 3600, help="Seconds to follow it at most."),
    addr: str = ADDR,
) -> None:
    """Follow a job: a progress bar with rate, ETA and accuracy so far."""
    with _front_door(addr, False) as door:
        follow(door, job_id, timeout)


@app.command("list")
@_grpc_errors
def list_jobs(
    limit: int = typer.Option(50, help="Newest N jobs."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per job."),
    addr: str = ADDR,
) -> None:
    """The newest jobs, with their counts."""
    with _front_door(addr, False) as door:
        jobs = list(door.stub.ListJobs(opb.ListJobsRequest(page_size=min(limit, 1000)), timeout=30).jobs)
    if json_out:
        for job in jobs:
            print(json.dumps(job_summary(job)))
        return
    wide.print(_job_table(jobs))


@app.command()
@_grpc_errors
def cancel(job_id: str = typer.Argument(..., help="The job's id."), addr: str = ADDR) -> None:
    """Cancel a job: nothing new starts; running episodes stop at their next step."""
    with _front_door(addr, False) as door:
        job = door.stub.CancelJob(opb.CancelJobRequest(job_id=job_id), timeout=30)
    console.print(f"job {job.id}: {opb.JobStatus.Name(job.status).removeprefix('JOB_STATUS_').lower()}")


@app.command("results")
@_grpc_errors
def results_cmd(
    job_id: str = typer.Argument(..., help="The job's id."),
    limit: int = typer.Option(0, help="Show the first N episodes (0: all)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per episode."),
    addr: str = ADDR,
) -> None:
    """A table of a job's episodes (problem, sample, status, correct, tokens, tool calls)."""
    with _front_door(addr, False) as door:
        job = door.get(job_id)
        rows, _ = door.episodes(job_id, limit=limit)
    if json_out:
        for row in rows:
            print(json.dumps(_episode_row(row)))
        return
    table = Table(title=f"job {job.id}: accuracy {job.accuracy:.1%} over {job.counts.done} done")
    for column in ("episode", "problem", "problem id", "sample", "status", "correct", "tokens", "tool calls", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        item = _episode_row(row)
        table.add_row(
            item["episode_id"], str(item["problem_index"]), item["problem_id"], str(item["sample_index"]),
            item["status"], "yes" if item["correct"] else "no", str(item["tokens"]), str(item["tool_calls"]),
            item["error"][:80],
        )
    wide.print(table)


def _episode_row(summary: opb.EpisodeSummary) -> dict:
    return {
        "episode_id": summary.episode_id,
        "problem_index": summary.problem_index,
        "problem_id": summary.problem_id,
        "sample_index": summary.sample_index,
        "status": pb.EpisodeStatus.Name(summary.status).removeprefix("EPISODE_STATUS_").lower(),
        "correct": summary.correct,
        "tokens": summary.tokens,
        "tool_calls": summary.tool_calls,
        "error": summary.error,
    }
