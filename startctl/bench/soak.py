"""`startctl bench soak [--minutes M] [--episodes N]`: the whole platform under a steady load
for M minutes (10 by default), with hostile programs thrown at its sandbox meanwhile.

Load: N episodes (200 by default) kept in flight through the front door, as users send
them: N clients each submit an episode (`SubmitEpisode`), follow it to its end
(`WatchEpisode`) and submit the next, alternating greedy with the tool loop and hint-infer
over the micro problems, so generation, hints, the gVisor sandbox and scoring all work. After
M minutes no new episode is submitted and the tail drains (at most DRAIN_S).

Figures:
- step latency p50 / p99: from the worker's own `start_worker_step_seconds` histogram (a
  step is one worker step of an episode: start, generate, run_tool or finish), counted from
  the end of the warm-up to the end of the drain, interpolated within its buckets as
  Prometheus' histogram_quantile does (bounds 5 ms ... 300 s, so a figure is as exact as
  its bucket); beside it each episode's wall time, exact, from submit to finish;
- episodes done and failed, errors by kind (failed episodes by their error, and RPCs the
  clients saw fail, by status), lost = accepted by the front door but not finished after
  the drain;
- RSS of every service's whole process tree (the generation service with vLLM's engine
  core, the sandbox with its runsc sandboxes, the worker supervisor with its Celery
  worker, Redis...), first after the warm-up (the first WARM_UP_S seconds of load, or a
  quarter of a short run: start-up, engine compilation and the first tool runs are not
  measured) and again at M minutes, still under the same load, each the median of
  RSS_SAMPLES samples a second apart. Finished episodes expire from Redis after
  FINISHED_TTL_S here (7 days by default: growth by design, which the run would otherwise
  count as a leak: +17% in a 10-minute run). A sandbox is retired after a run stopped at a
  limit, so the fork bomb's gVisor stub processes do not stay;
- Redis's own account of its memory beside its RSS, at both ends: what it holds (used_memory:
  keys, queues, client buffers, the append-only buffer) and what its allocator keeps
  resident. Redis's floor judges used_memory: a 15 MiB Redis's RSS is mostly jemalloc's
  pages, which ratchet up with each new peak of what Redis holds and stay (after 4 MB of
  keys set and flushed, RSS stays 30% up even after `MEMORY PURGE`), so its RSS measures
  the highest queue seen, not a leak; a leak in Redis is keys or buffers that stay, which
  used_memory counts. Its RSS growth is reported beside it;
- the hostile catalogue (startctl/bench/hostile.py) against the same sandbox service, at
  1/3 and at 2/3 of the run.

Floors (issue 14): lost = 0, RSS growth at most 10% for every service, every hostile
program contained in both rounds.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import grpc
import psutil
import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from start.v1 import common_pb2 as pb
from startctl.bench.harness import metric_samples
from startctl.bench.hint_infer import bench_problems
from startctl.bench.hostile import run_catalogue
from startctl.episodes import FINISHED, OrchestratorClient, hint_infer_options
from startctl.processes import LocalProcess, free_port
from startctl.stack import ROOT, LocalStack, new_run_dir

PROBLEMS = ROOT / "data" / "micro" / "eval.jsonl"
# Issue 14's floors.
RSS_GROWTH_FLOOR = 0.10
# Load before the start RSS is taken: the engine's first batches, the sandboxes' first
# runs and every client's first episode are start-up, not steady state.
WARM_UP_S = 60.0
FINISHED_TTL_S = 30  # seconds a finished episode stays in Redis during the soak
# RSS samples, a second apart, whose median is a service's figure.
RSS_SAMPLES = 5
# The longest the tail may take to finish once no episode is submitted any more.
DRAIN_S = 300.0
# When the hostile catalogue runs, as fractions of the run.
HOSTILE_AT = (1 / 3, 2 / 3)
TERMINAL = (*FINISHED, pb.EPISODE_STATUS_CANCELLED)


@dataclass
class Tally:
    """What the clients saw, shared between their threads (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: int = 0
    accepted: set[str] = field(default_factory=set)
    finished: dict[str, pb.Episode] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


def error_kind(episode: pb.Episode) -> str:
    """A failed episode's error without its step numbers, ids and counts, so that the same
    failure in different episodes counts as one kind."""
    text = re.sub(r"^step \d+( after \d+ retries)?: ", "", episode.error)
    return "episode failed: " + re.sub(r"\d+(\.\d+)?", "N", text)[:120]


class Load:
    """N clients, each submitting an episode, following it to its end and submitting the
    next, until `stop`; then each follows its last episode until the drain deadline."""

    def __init__(self, addr: str, problems: list[pb.Problem], clients: int) -> None:
        self.addr, self.problems, self.clients = addr, problems, clients
        self.tally = Tally()
        self.stopping = threading.Event()
        self.drain_deadline = float("inf")
        self._numbers = itertools.count()
        self._tag = f"soak-{int(time.time())}"
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop_and_drain(self, drain_s: float) -> None:
        self.drain_deadline = time.monotonic() + drain_s
        self.stopping.set()
        for thread in self._threads:
            thread.join(max(0.0, self.drain_deadline - time.monotonic()) + 60)

    def in_flight(self) -> int:
        with self.tally.lock:
            return len(self.tally.accepted) - len(self.tally.finished)

    def _client(self) -> None:
        client = OrchestratorClient(self.addr)
        try:
            while not self.stopping.is_set():
                number = next(self._numbers)
                problem = self.problems[number % len(self.problems)]
                # Odd episodes hint-infer, even ones greedy with the tool loop: both call the sandbox.
                options = hint_infer_options(number % 2 == 1, seed=number)
                with self.tally.lock:
                    self.tally.submitted += 1
                try:
                    episode_id = client.submit(problem, options, episode_id=f"{self._tag}-{number}")
                except grpc.RpcError as exc:
                    self.tally.error(f"submit: {exc.code().name}")
                    time.sleep(1.0)
                    continue
                with self.tally.lock:
                    self.tally.accepted.add(episode_id)
                episode = self._follow(client, episode_id)
                if episode is not None:
                    with self.tally.lock:
                        self.tally.finished[episode_id] = episode
        finally:
            client.close()

    def _follow(self, client: OrchestratorClient, episode_id: str) -> pb.Episode | None:
        """The finished episode, or None when it did not finish by the drain deadline. A
        broken stream is counted and followed again: the episode lives on in Redis."""
        while True:
            left = self.drain_deadline - time.monotonic()
            if left <= 0:
                return None
            last = None
            try:
                for snapshot in client.watch(episode_id, timeout_s=min(left, 600.0)):
                    last = snapshot  # one snapshot per step, until the episode is finished
            except grpc.RpcError as exc:
                # The watch's own time limit is no error: the episode is followed again.
                if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    self.tally.error(f"watch: {exc.code().name}")
                    time.sleep(1.0)
                continue
            if last is not None and last.status in TERMINAL:
                return last


def tree_rss(process: LocalProcess) -> tuple[int, int]:
    """(bytes, processes) of a service's whole tree: its descendants, and anything left in
    its session that was re-parented away from it (each service starts its own session)."""
    assert process.proc is not None
    root = psutil.Process(process.proc.pid)
    members = {root.pid: root, **{child.pid: child for child in root.children(recursive=True)}}
    for candidate in psutil.process_iter():
        try:
            if candidate.pid not in members and os.getsid(candidate.pid) == root.pid:
                members[candidate.pid] = candidate
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    total = 0
    for member in members.values():
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue  # it exited between the listing and now
    return total, len(members)


def rss_by_service(stack: LocalStack, samples: int = RSS_SAMPLES) -> dict[str, tuple[int, int]]:
    """Each service's tree: the median of a few samples a second apart, since a tree's RSS
    moves from one instant to the next with what it is doing (the sandbox's by about 5%)."""
    taken: dict[str, list[tuple[int, int]]] = {}
    for i in range(samples):
        for proc in stack.processes:
            if proc.alive():
                taken.setdefault(proc.name, []).append(tree_rss(proc))
        if i + 1 < samples:
            time.sleep(1.0)
    return {name: sorted(values)[len(values) // 2] for name, values in taken.items()}


# What the soak reports of Redis's INFO memory / clients, beside its RSS.
REDIS_FIELDS = (
    "used_memory", "used_memory_peak", "used_memory_dataset", "mem_clients_normal", "mem_aof_buffer",
    "allocator_resident", "used_memory_rss", "mem_fragmentation_ratio", "connected_clients",
)


def redis_memory(url: str, samples: int = RSS_SAMPLES) -> dict[str, float]:
    """Redis's INFO memory and clients fields (REDIS_FIELDS), each the median of a few
    samples a second apart, as the RSS figures are."""
    client = redis.Redis.from_url(url)
    taken: dict[str, list[float]] = {name: [] for name in REDIS_FIELDS}
    try:
        for i in range(samples):
            info = {**client.info("memory"), **client.info("clients")}
            for name in REDIS_FIELDS:
                taken[name].append(float(info.get(name, 0)))
            if i + 1 < samples:
                time.sleep(1.0)
    finally:
        client.close()
    return {name: sorted(values)[len(values) // 2] for name, values in taken.items()}


def step_buckets(port: int, worker: LocalProcess) -> dict[str, dict[float, float]]:
    """The worker's step-time histogram: action -> {upper bound: cumulative count}."""
    buckets: dict[str, dict[float, float]] = {}
    for sample in metric_samples(port, worker):
        if sample.name == "start_worker_step_seconds_bucket":
            bound = float(sample.labels["le"])
            buckets.setdefault(sample.labels["action"], {})[bound] = sample.value
    return buckets


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket the q-th observation falls in
    (the lowest bucket from 0; past the last finite bound, that bound)."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return 0.0
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        if cumulative[bound] >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / max(cumulative[bound] - lower_count, 1e-12)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, cumulative[bound]
    return lower_bound


def step_latency(before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]) -> dict:
    """p50 / p99 of the steps taken between the two scrapes, over all actions and by action."""
    def between(action: str) -> dict[float, float]:
        return {b: n - before.get(action, {}).get(b, 0.0) for b, n in after[action].items()}

    by_action = {action: between(action) for action in sorted(after)}
    overall: dict[float, float] = Counter()
    for counts in by_action.values():
        overall.update(counts)

    def summary(counts: dict[float, float]) -> dict:
        return {
            "p50": histogram_quantile(0.5, counts),
            "p99": histogram_quantile(0.99, counts),
            "steps": int(counts.get(float("inf"), 0)),
        }

    return {"all": summary(dict(overall)), **{a: summary(c) for a, c in by_action.items() if c.get(float("inf"))}}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(console: Console, minutes: float = 10.0, episodes: int = 200) -> dict:
    if not minutes > 0:
        raise typer.BadParameter(f"--minutes must be more than 0, got {minutes}")
    if episodes < 1:
        raise typer.BadParameter(f"--episodes must be at least 1, got {episodes}")
    duration_s = 60.0 * minutes
    warm_up_s = min(WARM_UP_S, duration_s / 4)
    problems = bench_problems(PROBLEMS)
    run_dir = new_run_dir("bench-soak")
    metrics_port = free_port()
    stack = LocalStack(
        run_dir=run_dir,
        # Steps wait on gRPC calls in the worker's threads: one per episode in flight.
        worker_concurrency=episodes,
        extra_env={
            "START_WORKER_METRICS_PORT": str(metrics_port),
            # Finished episodes stay in Redis for their TTL (7 days by default) so clients can
            # fetch them: growth by design, not a leak, that a 10-minute soak would measure as
            # one. With a TTL inside the warm-up, Redis holds a steady window of them.
            "START_WORKER_FINISHED_TTL_S": str(FINISHED_TTL_S),
        },
        on_status=lambda message: console.log(message),
    )
    console.log(f"{episodes} episodes in flight for {minutes:g} min; warm-up {warm_up_s:.0f} s; runs in {run_dir}")
    with stack:
        worker = next(proc for proc in stack.processes if proc.name == "worker")
        load = Load(stack.addr("orchestrator"), problems, episodes)
        hostile_rounds: list[dict] = []
        hostile = threading.Thread(
            target=_hostile_rounds, args=(stack.addr("sandbox"), duration_s, hostile_rounds), daemon=True
        )
        started = time.monotonic()
        load.start()
        hostile.start()
        with _progress(console) as progress:
            bar = progress.add_task("soak", total=duration_s, state="starting")
            _wait_until(started + warm_up_s, stack, load, progress, bar, started)
            rss_start = rss_by_service(stack)
            redis_start = redis_memory(stack.redis_url)
            buckets_start = step_buckets(metrics_port, worker)
            _wait_until(started + duration_s, stack, load, progress, bar, started)
            rss_end = rss_by_service(stack)
            redis_end = redis_memory(stack.redis_url)
            progress.update(bar, description="draining")
            drain_started = time.monotonic()
            load.stop_and_drain(DRAIN_S)
            drain_s = time.monotonic() - drain_started
            hostile.join(DRAIN_S)
        buckets_end = step_buckets(metrics_port, worker)
        stack.check_alive()
    figures = soak_figures(
        load.tally, rss_start, rss_end, buckets_start, buckets_end, hostile_rounds, (redis_start, redis_end)
    )
    figures.update(minutes=minutes, in_flight=episodes, warm_up_s=warm_up_s, drain_s=drain_s)
    figures["episodes"]["per_minute"] = figures["episodes"]["finished"] / ((duration_s + drain_s) / 60)
    for table in (counts_table(figures), rss_table(figures), redis_table(figures), hostile_table(figures)):
        console.print(table)
    return figures


def _hostile_rounds(addr: str, duration_s: float, rounds: list[dict]) -> None:
    started = time.monotonic()
    for at in HOSTILE_AT:
        time.sleep(max(0.0, started + at * duration_s - time.monotonic()))
        at_s = time.monotonic() - started
        verdicts = run_catalogue(addr)
        rounds.append({"at_s": at_s, "programs": [asdict(v) for v in verdicts]})


def _progress(console: Console) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.fields[state]}"))
    return Progress(*columns, console=console)


def _wait_until(when: float, stack: LocalStack, load: Load, progress: Progress, bar: int, started: float) -> None:
    while time.monotonic() < when:
        stack.check_alive()
        with load.tally.lock:
            done = sum(e.status == pb.EPISODE_STATUS_DONE for e in load.tally.finished.values())
            failed = len(load.tally.finished) - done
        errors = sum(load.tally.errors.values())
        progress.update(
            bar, completed=time.monotonic() - started,
            state=f"in flight {load.in_flight()}  done {done}  failed {failed}  errors {errors}",
        )
        time.sleep(min(1.0, max(0.0, when - time.monotonic())))


def soak_figures(
    tally: Tally,
    rss_start: dict[str, tuple[int, int]],
    rss_end: dict[str, tuple[int, int]],
    buckets_start: dict[str, dict[float, float]],
    buckets_end: dict[str, dict[float, float]],
    hostile_rounds: list[dict],
    redis_ends: tuple[dict[str, float], dict[str, float]] | None = None,
) -> dict:
    finished = list(tally.finished.values())
    errors = Counter(tally.errors)
    errors.update(error_kind(e) for e in finished if e.status != pb.EPISODE_STATUS_DONE)
    lost = sorted(tally.accepted - set(tally.finished))
    rss = {
        name: {
            "start_mb": rss_start[name][0] / 2**20,
            "end_mb": rss_end.get(name, (0, 0))[0] / 2**20,
            "growth": rss_end.get(name, (0, 0))[0] / rss_start[name][0] - 1,
            "processes_start": rss_start[name][1],
            "processes_end": rss_end.get(name, (0, 0))[1],
        }
        for name in rss_start
    }
    redis_memory = {}
    if redis_ends is not None:
        start, end = redis_ends
        redis_memory = {"start": start, "end": end, "held_growth": end["used_memory"] / start["used_memory"] - 1}
    # Every service by its tree's RSS, except Redis by what it holds (the module's docstring).
    judged = {name: r["growth"] for name, r in rss.items() if not (name == "redis" and redis_memory)}
    if redis_memory:
        judged["redis (used_memory)"] = redis_memory["held_growth"]
    programs = [p for r in hostile_rounds for p in r["programs"]]
    floors = {
        "lost": not lost,
        "memory_growth": bool(rss) and all(growth <= RSS_GROWTH_FLOOR for growth in judged.values()),
        "hostile": len(hostile_rounds) == len(HOSTILE_AT) and all(p["contained"] for p in programs),
    }
    walls = [e.finished_unix - e.created_unix for e in finished]
    return {
        "episodes": {
            "submitted": tally.submitted,
            "accepted": len(tally.accepted),
            "finished": len(finished),
            "done": sum(e.status == pb.EPISODE_STATUS_DONE for e in finished),
            "failed": sum(e.status != pb.EPISODE_STATUS_DONE for e in finished),
            "lost": len(lost),
            "lost_ids": lost[:20],
            "hint_infer": sum(e.options.hints_enabled for e in finished),
            "with_tool_calls": sum(e.tool_calls > 0 for e in finished),
            "tool_calls": sum(e.tool_calls for e in finished),
        },
        "errors": dict(errors.most_common()),
        "step_latency_s": step_latency(buckets_start, buckets_end),
        "step_latency_source": "worker histogram start_worker_step_seconds, after warm-up, bucket-interpolated",
        "episode_wall_s": {"p50": quantile(walls, 0.5), "p99": quantile(walls, 0.99), "max": max(walls, default=0.0)},
        "rss": rss,
        "redis_memory": redis_memory,
        "memory_growth_judged": judged,
        "hostile": {
            "rounds": hostile_rounds,
            "programs": len(programs),
            "contained": sum(p["contained"] for p in programs),
        },
        "floors": floors,
        "floors_met": all(floors.values()),
    }


def counts_table(figures: dict) -> Table:
    e = figures["episodes"]
    table = Table(title=f"soak: {figures['in_flight']} episodes in flight for {figures['minutes']:g} min",
                  caption=f"step latency: {figures['step_latency_source']}; episode wall: submit to finish")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("episodes finished (done / failed)", f"{e['finished']} ({e['done']} / {e['failed']})"),
        ("episodes per minute", f"{e['per_minute']:.1f}"),
        ("hint-infer / greedy", f"{e['hint_infer']} / {e['finished'] - e['hint_infer']}"),
        ("tool calls (episodes with one)", f"{e['tool_calls']} ({e['with_tool_calls']})"),
        ("lost (accepted, never finished)", f"{e['lost']}"),
        ("drain after the last submission", f"{figures['drain_s']:.0f} s"),
    ]
    for action, s in figures["step_latency_s"].items():
        rows.append((f"step latency {action} p50 / p99 ({s['steps']} steps)", f"{s['p50']:.3f} / {s['p99']:.3f} s"))
    w = figures["episode_wall_s"]
    rows.append(("episode wall p50 / p99 / max", f"{w['p50']:.1f} / {w['p99']:.1f} / {w['max']:.1f} s"))
    for kind, count in figures["errors"].items():
        rows.append((f"error: {kind}", f"{count}"))
    for row in rows:
        table.add_row(*row)
    return table


def rss_table(figures: dict) -> Table:
    table = Table(
        title=f"Memory of each service's process tree (floor: growth <= {RSS_GROWTH_FLOOR:.0%})",
        caption=(f"RSS; Redis judged on what it holds, its RSS beside. Start: after {figures['warm_up_s']:.0f} s "
                 f"of load; end: at {figures['minutes']:g} min, same load"),
    )
    for column in ("service", "start MiB", "end MiB", "growth", "processes start / end"):
        table.add_column(column, justify="right")
    judged = figures["memory_growth_judged"]
    for name, r in figures["rss"].items():
        mark = "" if name not in judged else " [red](over)[/]" if r["growth"] > RSS_GROWTH_FLOOR else ""
        table.add_row(name, f"{r['start_mb']:.1f}", f"{r['end_mb']:.1f}", f"{r['growth']:+.1%}{mark}",
                      f"{r['processes_start']} / {r['processes_end']}")
    if held := figures.get("redis_memory"):
        mark = " [red](over)[/]" if held["held_growth"] > RSS_GROWTH_FLOOR else ""
        table.add_row("redis holds (used_memory)", f"{held['start']['used_memory'] / 2**20:.1f}",
                      f"{held['end']['used_memory'] / 2**20:.1f}", f"{held['held_growth']:+.1%}{mark}", "")
    return table


def redis_table(figures: dict) -> Table:
    """Redis's INFO memory at both ends: what it holds against what its allocator keeps."""
    table = Table(title="Redis's own account of its memory (INFO memory, clients)", caption="MiB unless named")
    for column in ("figure", "start", "end"):
        table.add_column(column, justify="right")
    ends = figures.get("redis_memory") or {}
    for name in REDIS_FIELDS:
        if name not in ends.get("start", {}):
            continue
        start, end = ends["start"][name], ends["end"][name]
        if name in ("mem_fragmentation_ratio", "connected_clients"):
            table.add_row(name, f"{start:g}", f"{end:g}")
        else:
            table.add_row(name, f"{start / 2**20:.2f}", f"{end / 2**20:.2f}")
    return table


def hostile_table(figures: dict) -> Table:
    rounds = figures["hostile"]["rounds"]
    table = Table(title="hostile programs against the soak's sandbox service (floor: all contained)")
    table.add_column("program")
    for r in rounds:
        table.add_column(f"at {r['at_s']:.0f} s")
    names = [p["name"] for p in rounds[0]["programs"]] if rounds else []
    for i, name in enumerate(names):
        table.add_row(name, *(_verdict_cell(r["programs"][i]) for r in rounds))
    return table


def _verdict_cell(verdict: dict) -> str:
    return "contained" if verdict["contained"] else f"[red]ESCAPED[/]: {verdict['detail']}"

