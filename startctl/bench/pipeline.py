"""`startctl bench pipeline`: a job's Redis memory stays bounded by work in flight, the
results writer costs under 2% of the job's time, and every episode is written exactly once.

One RFT-style job (the `sample` arm, 16 samples per problem, on the micro problems) of
1,100 episodes runs through the whole platform on loopback with at most 64 episodes of the
job in Redis. Redis's `used_memory` is read when 100 and when 1,000 episodes have been
written to the results. The baseline, measured in the same run, is what the same 1,000
episodes would hold in Redis if finished episodes stayed there (as they did before jobs:
7 days): the mean size of a finished episode's hash (`MEMORY USAGE`, sampled before it is
written) times 900, on top of the reading at 100.

Floors (issue 11): used memory after 1,000 at most 1.5x that after 100; the writer's time
(summed over its parts) under 2% of the job's wall time; each (problem, sample) once in the
results. Also reported, for docs/scale.md: Redis commands per episode step (every process
together) and Parquet bytes per episode. `START_BENCH_EPISODES=N` runs a smaller job (a
quick check; the readings at 100 and 1,000 then come at a tenth and nine tenths of N).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from services.common.channels import channel
from services.orchestrator import results
from services.orchestrator import store as keys
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc
from startctl.stack import LocalStack, new_run_dir
from training.micro.problems import make_problems

SAMPLES = 16
IN_FLIGHT = 64


class EpisodeSizes:
    """Samples the memory of finished episodes' hashes while they wait to be written."""

    def __init__(self, client: redis.Redis, job_id: str) -> None:
        self.client, self.job_id = client, job_id
        self.sizes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for raw in self.client.srandmember(keys.job_finished_key(self.job_id), 8) or []:
                size = self.client.memory_usage(keys.episode_key(raw.decode()))
                if size:
                    self.sizes.append(int(size))
            time.sleep(0.2)

    def __enter__(self) -> EpisodeSizes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(console: Console) -> dict:
    episodes = int(os.environ.get("START_BENCH_EPISODES", "1100") or 1100)
    low, high = (100, 1000) if episodes >= 1100 else (max(1, episodes // 10), max(2, episodes * 9 // 10))
    problems = make_problems(-(-episodes // SAMPLES), seed=41, split="train")
    run_dir = new_run_dir("bench-pipeline")
    env = {
        "START_ORCHESTRATOR_JOB_MAX_IN_FLIGHT": str(IN_FLIGHT),
        "START_ORCHESTRATOR_RESULTS_URL": str(run_dir / "results"),
    }
    with LocalStack(run_dir=run_dir, extra_env=env, on_status=lambda m: console.log(m)) as stack:
        client = redis.Redis.from_url(stack.redis_url)
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel(stack.addr("orchestrator")))
        inline = [
            pb.Problem(id=p.id, question=p.question, reference=p.reference, task_type=pb.TASK_TYPE_MATH)
            for p in problems
        ]
        request = opb.SubmitJobRequest(
            inline=opb.InlineProblems(problems=inline), arm=opb.ARM_SAMPLE, samples=SAMPLES, limit=0,
            options=pb.EpisodeOptions(sampling=pb.SamplingParams(max_tokens=300), max_total_tokens=600),
        )
        commands_before = _commands(client)
        started = time.monotonic()
        job_id = stub.SubmitJob(request, timeout=120).job.id
        console.log(f"job {job_id}: {len(problems) * SAMPLES} episodes, at most {IN_FLIGHT} in Redis")
        memory: dict[int, int] = {}
        watch = opb.WatchJobRequest(job_id=job_id, interval_s=0.5, timeout_s=3600)
        with EpisodeSizes(client, job_id) as sizes:
            for job in stub.WatchJob(watch, timeout=3700):
                for mark in (low, high):
                    if mark not in memory and job.counts.written >= mark:
                        memory[mark] = int(client.info("memory")["used_memory"])
                        console.log(f"{job.counts.written} written: Redis used_memory {memory[mark] / 1e6:.2f} MB")
        wall_s = time.monotonic() - started
        commands = _commands(client) - commands_before
        manifest = results.read_manifest(job.results_url)
        table = results.read_results(job.results_url, columns=["problem_index", "sample_index", "steps"])
        result_bytes = sum(Path(u).stat().st_size for u in results.part_urls(job.results_url))
    pairs = list(zip(table["problem_index"].to_pylist(), table["sample_index"].to_pylist(), strict=True))
    exactly_once = len(pairs) == len(set(pairs)) == job.counts.episodes
    mean_episode = sum(sizes.sizes) / len(sizes.sizes) if sizes.sizes else 0.0
    kept_baseline = memory[low] + mean_episode * (high - low)
    growth = memory[high] / memory[low]
    writer_share = manifest.get("writer_seconds", 0.0) / wall_s
    figures = {
        "episodes": job.counts.episodes,
        "written": job.counts.written,
        "wall_s": round(wall_s, 1),
        "episodes_per_s": round(job.counts.episodes / wall_s, 2),
        "redis_used_memory_low": memory[low],
        "redis_used_memory_high": memory[high],
        "readings_at": [low, high],
        "memory_growth": round(growth, 3),
        "mean_finished_episode_bytes": round(mean_episode),
        "baseline_kept_in_redis_growth": round(kept_baseline / memory[low], 3),
        "writer_seconds": round(manifest.get("writer_seconds", 0.0), 3),
        "writer_share": round(writer_share, 5),
        "results_parts": len(results.part_urls(job.results_url)),
        "steps": sum(table["steps"].to_pylist()),
        "redis_commands_per_step": round(commands / max(1, sum(table["steps"].to_pylist())), 1),
        "result_bytes_per_episode": round(result_bytes / max(1, table.num_rows)),
        "exactly_once": exactly_once,
    }
    figures["floors_met"] = bool(growth <= 1.5 and writer_share < 0.02 and exactly_once)
    console.print(_table(figures))
    console.print(f"results and report: {job.results_url}")
    return figures


def _commands(client: redis.Redis) -> int:
    """Commands Redis has run so far, every client together (Lua scripts count as one)."""
    return sum(int(v["calls"]) for k, v in client.info("commandstats").items() if k.startswith("cmdstat_"))


def _table(f: dict) -> Table:
    low, high = f["readings_at"]
    table = Table(title=f"pipeline: one sample-arm job of {f['episodes']} episodes, {IN_FLIGHT} in flight")
    for column in ("figure", "value", "baseline (finished episodes kept in Redis)", "floor"):
        table.add_column(column)
    table.add_row(f"Redis used memory after {low} written", f"{f['redis_used_memory_low'] / 1e6:.2f} MB", "", "")
    table.add_row(
        f"Redis used memory after {high} written",
        f"{f['redis_used_memory_high'] / 1e6:.2f} MB ({f['memory_growth']:.2f}x)",
        f"{f['baseline_kept_in_redis_growth']:.2f}x ({f['mean_finished_episode_bytes']} B per episode)",
        "<= 1.5x",
    )
    table.add_row(
        "results writer's share of the job's wall time",
        f"{100 * f['writer_share']:.2f}% ({f['writer_seconds']:.2f} s of {f['wall_s']:.0f} s, "
        f"{f['results_parts']} parts)",
        "",
        "< 2%",
    )
    table.add_row("each (problem, sample) exactly once", str(f["exactly_once"]), "", "true")
    table.add_row("episodes per second", f"{f['episodes_per_s']:.2f}", "", "")
    table.add_row("Redis commands per step (all processes)", f"{f['redis_commands_per_step']:.1f}", "", "")
    table.add_row("Parquet bytes per episode", f"{f['result_bytes_per_episode']}", "", "")
    return table
