"""`startctl bench routing`: how much of each step's prompt the prefix cache serves when
several generation replicas share the episodes, routed by episode and round robin.

Every step of a hint-infer episode re-sends the whole episode; only the replica that
computed it before can serve it from its prefix cache. The whole platform runs on loopback
(orchestrator, Celery worker, hints, gVisor sandbox) with two generation replicas (two
engines with the micro model), and the same 32 episodes (data/micro/demo.jsonl's 16
problems, then eval.jsonl's first 16: distinct problems, so no episode is served from a
twin's cache) run three ways, all at once, each from emptied caches:

  single       one replica takes every call (today's single address);
  affinity     two replicas, each episode's steps on the replica its id hashes to;
  round_robin  two replicas, each call to the next one (per-connection balancing's effect).

Cached share = the episodes' prompt tokens served from the cache / their prompt tokens
(`episode.usage`). Floor (issue 15): affinity's cached share at least 0.95x single's. The
worker restarts between arms with the arm's routing settings; its Prometheus counters
(`start_worker_generation_calls_total`) give each arm's calls per replica and its spills.
`START_BENCH_PROBLEMS=N` runs the first N problems (a quick run, as the tests do).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.table import Table

from services.common.channels import channel
from services.orchestrator.problemsets import load_problem_set
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2, generation_pb2_grpc
from startctl.bench.harness import metric_samples
from startctl.bench.hint_infer import BLOCK_SIZE, run_episodes
from startctl.episodes import hint_infer_options
from startctl.processes import LocalProcess, free_port, service_process, wait_ready
from startctl.stack import ROOT, START_ORDER, LocalStack, new_run_dir

PROBLEM_FILES = (ROOT / "data" / "micro" / "demo.jsonl", ROOT / "data" / "micro" / "eval.jsonl")
EPISODES = 32
AFFINITY_FLOOR = 0.95
# Each engine's KV cache (GiB): two engines and the platform fit in a few GiB of memory,
# and 1 GiB holds far more than 32 micro episodes, so nothing is evicted within an arm.
KV_CACHE_GIB = "1"
ARMS = ("single", "affinity", "round_robin")


@dataclass
class Arm:
    """One routing of the episodes, summed over them."""

    episodes: int
    prompt_tokens: int
    cached_prompt_tokens: int
    decoded_tokens: int
    wall_s: float
    correct: int
    # From the worker's counters: generation calls by replica, and by how they were routed.
    calls_by_replica: dict[str, int] = field(default_factory=dict)
    calls_by_route: dict[str, int] = field(default_factory=dict)

    @property
    def cached_share(self) -> float:
        return self.cached_prompt_tokens / max(1, self.prompt_tokens)

    @property
    def spills(self) -> int:
        return self.calls_by_route.get("spilled", 0)


def bench_problems() -> list[pb.Problem]:
    """32 distinct problems; `START_BENCH_PROBLEMS=N` keeps the first N."""
    problems = [p for path in PROBLEM_FILES for p in load_problem_set(str(path)).problems][:EPISODES]
    limit = int(os.environ.get("START_BENCH_PROBLEMS", "0") or 0)
    return problems[:limit] if limit > 0 else problems


def arm_env(arm: str, replicas: list[str]) -> dict[str, str]:
    """The worker's routing settings for an arm (set explicitly: the caller's own env loses)."""
    if arm == "single":
        return {"START_GENERATION_REPLICAS": "", "START_GENERATION_ROUTING": "affinity"}
    return {"START_GENERATION_REPLICAS": ",".join(replicas), "START_GENERATION_ROUTING": arm}


def restart_worker(stack: LocalStack, env: dict[str, str]) -> LocalProcess:
    """Stop the stack's worker (warm shutdown) and start one with `env` on top of the stack's."""
    index = next(i for i, proc in enumerate(stack.processes) if proc.name == "worker")
    old = stack.processes[index]
    old.stop()
    worker = LocalProcess("worker", old.argv, {**stack.env(), **env}, log_dir=old.log_dir).start()
    stack.processes[index] = worker
    return worker


def scrape(port: int, worker: LocalProcess, timeout_s: float = 60) -> dict[tuple[str, str], int]:
    """The worker's generation calls by (replica, route); waits for its metrics to be served."""
    calls: dict[tuple[str, str], int] = {}
    for sample in metric_samples(port, worker, timeout_s):
        if sample.name == "start_worker_generation_calls_total":
            calls[(sample.labels["replica"], sample.labels["route"])] = int(sample.value)
    return calls


def reset_caches(addrs: list[str]) -> None:
    """Empty every replica's prefix cache, so no arm is served by another's prefixes."""
    for addr in addrs:
        with channel(addr) as ch:
            stub = generation_pb2_grpc.GenerationServiceStub(ch)
            for _ in range(20):
                if stub.ResetPrefixCache(generation_pb2.ResetPrefixCacheRequest(), timeout=30).reset:
                    break
                time.sleep(0.5)  # requests of the last arm still finishing
            else:
                raise RuntimeError(f"{addr} did not empty its prefix cache (requests still running)")


def run_arm(stack: LocalStack, arm: str, replicas: list[str], problems: list[pb.Problem], console: Console) -> Arm:
    metrics_port = free_port()
    worker = restart_worker(stack, {**arm_env(arm, replicas), "START_WORKER_METRICS_PORT": str(metrics_port)})
    scrape(metrics_port, worker)  # the new worker is up (its steps queue in Redis until it is)
    reset_caches(replicas)
    console.log(f"[{arm}] {len(problems)} episodes")
    episodes, wall = run_episodes(stack, problems, hint_infer_options(True), arm)
    calls = scrape(metrics_port, worker)
    by_replica: dict[str, int] = {}
    by_route: dict[str, int] = {}
    for (replica, route), n in calls.items():
        by_replica[replica] = by_replica.get(replica, 0) + n
        by_route[route] = by_route.get(route, 0) + n
    return Arm(
        episodes=len(episodes),
        prompt_tokens=sum(e.usage.prompt_tokens for e in episodes),
        cached_prompt_tokens=sum(e.usage.cached_prompt_tokens for e in episodes),
        decoded_tokens=sum(e.usage.completion_tokens for e in episodes),
        wall_s=wall,
        correct=sum(e.score.correct for e in episodes),
        calls_by_replica=dict(sorted(by_replica.items())),
        calls_by_route=dict(sorted(by_route.items())),
    )


def run(console: Console) -> dict:
    problems = bench_problems()
    run_dir = new_run_dir("bench-routing")
    console.log(f"{len(problems)} problems from {', '.join(p.name for p in PROBLEM_FILES)}; runs in {run_dir}")
    # Ports fixed up front: the second replica starts (and loads) beside the stack's own.
    ports = {name: free_port() for name in ("redis", *START_ORDER)}
    env = {"VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB, "START_GENERATION_BLOCK_SIZE": str(BLOCK_SIZE)}
    stack = LocalStack(run_dir=run_dir, ports=ports, extra_env=env, on_status=lambda m: console.log(f"[stack] {m}"))
    second_port = free_port()
    second = service_process("generation", second_port, stack.env(), log_dir=run_dir / "logs")
    second.name = "generation-2"
    replicas = [stack.addr("generation"), f"127.0.0.1:{second_port}"]
    try:
        second.start()
        with stack:
            console.log("[stack] waiting for the second generation replica")
            wait_ready(second, replicas[1], timeout_s=600)
            run_episodes(stack, problems[:2], hint_infer_options(True), "warmup")  # sandbox pool warm
            arms = {name: run_arm(stack, name, replicas, problems, console) for name in ARMS}
    finally:
        second.stop()

    console.print(arms_table(arms, replicas))
    single, affinity, round_robin = (arms[name] for name in ARMS)
    figures = {
        "episodes": len(problems),
        "replicas": 2,
        "kv_block_size": BLOCK_SIZE,
        "arms": {
            name: {**asdict(arm), "cached_share": arm.cached_share, "spills": arm.spills} for name, arm in arms.items()
        },
        "single_cached_share": single.cached_share,
        "affinity_cached_share": affinity.cached_share,
        "round_robin_cached_share": round_robin.cached_share,
        "affinity_vs_single": affinity.cached_share / max(single.cached_share, 1e-9),
        "round_robin_vs_single": round_robin.cached_share / max(single.cached_share, 1e-9),
        "affinity_spills": affinity.spills,
    }
    figures["floors_met"] = figures["affinity_vs_single"] >= AFFINITY_FLOOR
    console.print(
        f"With two replicas, episode affinity serves {affinity.cached_share:.1%} of prompt tokens from the cache "
        f"({figures['affinity_vs_single']:.3f}x one replica's {single.cached_share:.1%}; floor {AFFINITY_FLOOR}x), "
        f"round robin {round_robin.cached_share:.1%} ({figures['round_robin_vs_single']:.3f}x); "
        f"{affinity.spills} of affinity's calls spilled off their episode's replica."
    )
    return figures


def arms_table(arms: dict[str, Arm], replicas: list[str]) -> Table:
    table = Table(
        title="routing: prompt tokens served from the prefix cache, one replica and two",
        caption="cached share = cached prompt tokens / prompt tokens over all episodes; replica N calls: the "
        f"worker's generation calls on {' and '.join(replicas)} (single uses the first); spilled: calls sent off "
        "a saturated replica",
    )
    columns = ["arm", "episodes", "prompt", "cached", "cached share", "x single", "decoded", "correct"]
    columns += [f"replica {i} calls" for i in range(1, len(replicas) + 1)] + ["spilled", "wall s"]
    for column in columns:
        table.add_column(column, justify="right")
    base = arms["single"].cached_share
    for name, arm in arms.items():
        table.add_row(
            name,
            f"{arm.episodes}",
            f"{arm.prompt_tokens}",
            f"{arm.cached_prompt_tokens}",
            f"{arm.cached_share:.3f}",
            f"{arm.cached_share / max(base, 1e-9):.3f}",
            f"{arm.decoded_tokens}",
            f"{arm.correct}/{arm.episodes}",
            *(f"{arm.calls_by_replica.get(addr, 0)}" for addr in replicas),
            f"{arm.spills}",
            f"{arm.wall_s:.1f}",
        )
    return table
