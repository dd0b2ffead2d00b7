"""`startctl bench episode-throughput`: hint-infer episodes per second with 1, 8 and 64
episodes in flight, through the whole platform on loopback.

A closed loop per level: C clients each run episodes back to back (submit, follow the
episode's step stream to its end, submit the next) until the level's episodes are done;
throughput is episodes finished per second of the level's wall time. Meanwhile the
engine's scheduler is sampled (`ModelInfo.running_requests`): with C > 1 the generation
calls of different episodes decode in one batch, which is where the gain comes from. The
same samples time the generation service's replies while the engine works: a front end
starved of CPU (see docs/generation.md, the CPU engine on a shared machine) shows there.
`floors_met`: the issue names no number here, only that concurrent episodes share the
engine's batch, so it is true when the engine ran more than one request at once and 8
episodes in flight finish more per second than one.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle

from rich.console import Console
from rich.table import Table

from services.common.channels import channel
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2, generation_pb2_grpc
from startctl.bench.hint_infer import bench_problems, bench_stack
from startctl.episodes import OrchestratorClient, hint_infer_options
from startctl.stack import ROOT, new_run_dir

PROBLEMS = ROOT / "data" / "micro" / "eval.jsonl"
LEVELS = (1, 8, 64)


def episodes_at(level: int) -> int:
    """Enough episodes that the level's steady state dominates its ramp-up and drain."""
    return max(12, 2 * level)


class BatchSampler:
    """Samples the engine's running requests in the background, and how long each reply took."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.samples: list[int] = []
        self.reply_s: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with channel(self.addr) as ch:
            stub = generation_pb2_grpc.GenerationServiceStub(ch)
            while not self._stop.is_set():
                asked = time.perf_counter()
                info = stub.ModelInfo(generation_pb2.ModelInfoRequest(), timeout=30)
                self.reply_s.append(time.perf_counter() - asked)
                self.samples.append(info.running_requests)
                time.sleep(0.02)

    def __enter__(self) -> BatchSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_level(addr: str, generation_addr: str, problems: list[pb.Problem], level: int, tag: str) -> dict:
    options = hint_infer_options(True)
    total = episodes_at(level)
    todo = iter(zip(range(total), cycle(problems), strict=False))
    lock = threading.Lock()
    finished: list[pb.Episode] = []

    def client_loop() -> None:
        client = OrchestratorClient(addr)
        try:
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                i, problem = item
                episode_id = client.submit(problem, options, episode_id=f"{tag}-{i}")
                for _snapshot in client.watch(episode_id, timeout_s=600):
                    pass  # one snapshot per step, until the episode is finished
                episode = client.get(episode_id)
                with lock:
                    finished.append(episode)
        finally:
            client.close()

    with BatchSampler(generation_addr) as sampler:
        start = time.time()
        with ThreadPoolExecutor(max_workers=level) as pool:
            for future in [pool.submit(client_loop) for _ in range(level)]:
                future.result()
        wall = time.time() - start
    done = [e for e in finished if e.status == pb.EPISODE_STATUS_DONE]
    return {
        "in_flight": level,
        "episodes": total,
        "done": len(done),
        "wall_s": wall,
        "episodes_per_s": len(done) / wall,
        "max_running_requests": max(sampler.samples, default=0),
        "mean_running_requests": sum(sampler.samples) / max(1, len(sampler.samples)),
        "reply_ms_p50": 1000 * quantile(sampler.reply_s, 0.5),
        "reply_ms_p99": 1000 * quantile(sampler.reply_s, 0.99),
        "reply_ms_max": 1000 * max(sampler.reply_s, default=0.0),
        "accuracy": sum(e.score.correct for e in done) / max(1, len(done)),
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(console: Console) -> dict:
    problems = bench_problems(PROBLEMS)
    run_dir = new_run_dir("bench-episode-throughput")
    console.log(f"hint-infer episodes at {LEVELS} in flight; runs in {run_dir}")
    rows = []
    stack = bench_stack(run_dir, True, console)
    stack.worker_concurrency = max(LEVELS)
    with stack:
        run_level(stack.addr("orchestrator"), stack.addr("generation"), problems, 2, "warmup")
        for level in LEVELS:
            rows.append(run_level(stack.addr("orchestrator"), stack.addr("generation"), problems, level, f"c{level}"))
            console.log(f"{level} in flight: {rows[-1]['episodes_per_s']:.2f} episodes/s")
    base = rows[0]["episodes_per_s"]
    for r in rows:
        r["speedup_vs_1"] = r["episodes_per_s"] / base
    console.print(throughput_table(rows))
    shares_batch = max(r["max_running_requests"] for r in rows[1:]) > 1 and rows[1]["speedup_vs_1"] > 1
    all_done = all(r["done"] == r["episodes"] for r in rows)
    return {"rows": rows, "shares_batch": shares_batch, "floors_met": shares_batch and all_done}


def throughput_table(rows: list[dict]) -> Table:
    table = Table(
        title="hint-infer episodes per second",
        caption="running: the engine's batch, sampled every 20 ms; reply: how long that ModelInfo call took",
    )
    columns = ("in flight", "episodes", "wall s", "episodes/s", "x 1 in flight", "running max", "running mean")
    for column in (*columns, "reply ms p50", "p99", "max"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"{r['in_flight']}",
            f"{r['done']}/{r['episodes']}",
            f"{r['wall_s']:.1f}",
            f"{r['episodes_per_s']:.2f}",
            f"{r['speedup_vs_1']:.2f}",
            f"{r['max_running_requests']}",
            f"{r['mean_running_requests']:.1f}",
            f"{r['reply_ms_p50']:.1f}",
            f"{r['reply_ms_p99']:.0f}",
            f"{r['reply_ms_max']:.0f}",
        )
    return table
