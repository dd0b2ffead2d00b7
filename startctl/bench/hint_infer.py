"""`startctl bench hint-infer`: what hints and tool calls cost in prefill, with vLLM's
prefix cache and without.

Every hint and every tool output ends a generation call, and the next call re-sends the
whole episode. The same problems run three ways, on the whole platform on loopback
(orchestrator, Celery worker, hints, gVisor sandbox, vLLM CPU with the micro model):

  (a) uninterrupted  one generation call per problem, as long as that problem's (b)
                     episode (prompt + everything appended), no stop, no hint, no tool;
  (b) hint-infer     the platform's episodes, prefix caching on (the default);
  (c) no cache       the same episodes on an engine with prefix caching off.

Tokens computed = prompt tokens not served from the prefix cache + tokens decoded: every
token whose KV the engine computed. For (a) that is the episode's length, each token once;
hints and tool outputs that (b) prefills, (a) decodes instead, so the ratio (b)/(a) is
exactly the re-prefill a hint-infer episode pays. Of that, vLLM's prefix cache keeps whole
KV blocks only, so every call after an episode's first recomputes the previous context's
last, partial block: the limit is (a) plus those tokens, worked out call by call.

Floors (issue 15): (b) computes at most 1.05x the limit (a guard; the plain ratio to (a)
is printed beside it); one problem at a time, (b)'s generation calls take at most 1.1x
(a)'s time and the platform (queues, saves, hint decisions, tokenising) at most 10% of
(b)'s wall time; all problems at once, (b) takes at most 3x (a)'s wall time.

Each arm runs twice: one problem at a time (wall = the sum of each problem's time: the
latency a hint-infer episode adds over one generation, judged against the floor), and all
problems at once (wall = first submission to last finish, as a platform runs them; shown,
and measured further by `bench episode-throughput`). The prefix cache is emptied before
every run, and (a) runs on the cache-off engine, so no run is served by another's prefixes.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.common.channels import channel
from services.common.episode import context_token_ids
from services.orchestrator.problemsets import load_problem_set
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2, generation_pb2_grpc
from startctl.bench.harness import metric_samples
from startctl.episodes import OrchestratorClient, hint_infer_options
from startctl.processes import free_port
from startctl.stack import MICRO_MODEL, ROOT, LocalStack, new_run_dir

PROBLEMS = ROOT / "data" / "micro" / "demo.jsonl"
# Issue 15's floors.
TOKENS_OVER_LIMIT_FLOOR = 1.05
GENERATION_TIME_FLOOR = 1.1
PLATFORM_SHARE_FLOOR = 0.10
ALL_AT_ONCE_WALL_FLOOR = 3.0
# Small KV blocks (the CPU backend takes multiples of 32): the cache reuses whole blocks
# only, and vLLM's CPU default (128 tokens) is as long as a micro episode's stretch between
# two hints. See docs/generation.md.
BLOCK_SIZE = 32


@dataclass
class Arm:
    """One way of running the problem set, summed over its problems."""

    problems: int
    prompt_tokens: int
    cached_prompt_tokens: int
    decoded_tokens: int
    # The problem set all at once, and one problem at a time.
    wall_s: float
    sequential_wall_s: float = 0.0
    # Of the one-at-a-time run: seconds in generation calls and in tool runs.
    generation_s: float = 0.0
    tool_s: float = 0.0
    correct: int = 0
    # Orchestrator steps (generate, tool run, finish...); 1 per problem for (a).
    steps: int = 0
    # Of the one-at-a-time run: the worker's own work by part (load, hints, save, queue).
    platform_parts_s: dict[str, float] = field(default_factory=dict)

    @property
    def prefilled(self) -> int:
        return self.prompt_tokens - self.cached_prompt_tokens

    @property
    def computed(self) -> int:
        return self.prefilled + self.decoded_tokens


def bench_problems(path: Path) -> list[pb.Problem]:
    """The problem set; `START_BENCH_PROBLEMS=N` keeps the first N (a quick run, as the tests do)."""
    problems = load_problem_set(str(path)).problems
    limit = int(os.environ.get("START_BENCH_PROBLEMS", "0") or 0)
    return problems[:limit] if limit > 0 else problems


def bench_stack(run_dir: Path, caching: bool, console: Console, model: Path = MICRO_MODEL) -> LocalStack:
    env = {
        "START_GENERATION_ENABLE_PREFIX_CACHING": "true" if caching else "false",
        "START_GENERATION_BLOCK_SIZE": str(BLOCK_SIZE),
        # Where a step's platform time goes (load, hints, save, queue): the worker's metrics.
        "START_WORKER_METRICS_PORT": str(free_port()),
    }
    name = "cache-on" if caching else "cache-off"
    return LocalStack(
        run_dir=run_dir / name, model=model, extra_env=env, on_status=lambda m: console.log(f"[{name}] {m}")
    )


def reset_cache(stack: LocalStack) -> None:
    with channel(stack.addr("generation")) as ch:
        stub = generation_pb2_grpc.GenerationServiceStub(ch)
        if not stub.ResetPrefixCache(generation_pb2.ResetPrefixCacheRequest(), timeout=30).reset:
            raise RuntimeError("the engine did not empty its prefix cache (requests still running)")


def run_episodes(
    stack: LocalStack,
    problems: list[pb.Problem],
    options: pb.EpisodeOptions,
    tag: str,
    allow_failed: bool = False,
    one_at_a_time: bool = False,
) -> tuple[list[pb.Episode], float]:
    """The problems through the orchestrator, all at once or one after another;
    (episodes, wall seconds)."""
    client = OrchestratorClient(stack.addr("orchestrator"))
    try:
        start = time.time()
        if one_at_a_time:
            done = {}
            for p in problems:
                episode_id = client.submit(p, options, episode_id=f"{tag}-{p.id}-{start:.0f}")
                for _snapshot in client.watch(episode_id, timeout_s=600):
                    pass  # one snapshot per step, until it is finished
                done[episode_id] = client.get(episode_id)
            ids = list(done)
        else:
            ids = [client.submit(p, options, episode_id=f"{tag}-{p.id}-{start:.0f}") for p in problems]
            done = client.wait_all(ids, timeout_s=900)
    finally:
        client.close()
    episodes = [done[i] for i in ids]
    failed = [e for e in episodes if e.status != pb.EPISODE_STATUS_DONE]
    if failed and not allow_failed:
        raise RuntimeError(f"{len(failed)} episodes failed; first: {failed[0].error}")
    return episodes, max(e.finished_unix for e in episodes) - start


def platform_seconds(stack: LocalStack) -> dict[str, float]:
    """Seconds the worker has spent so far on each part of its own work (load, hints,
    save, queue: `start_worker_platform_seconds`)."""
    worker = next(proc for proc in stack.processes if proc.name == "worker")
    port = int(stack.extra_env["START_WORKER_METRICS_PORT"])
    return {
        sample.labels["part"]: sample.value
        for sample in metric_samples(port, worker)
        if sample.name == "start_worker_platform_seconds_sum"
    }


def hint_infer_arm(stack: LocalStack, problems: list[pb.Problem], tag: str) -> tuple[Arm, list[pb.Episode]]:
    """(b) or (c): the episodes one at a time, then all at once, each from a cold cache.
    Tokens are counted on the all-at-once run."""
    options = hint_infer_options(True)
    reset_cache(stack)
    before = platform_seconds(stack)
    one_by_one, sequential_wall = run_episodes(stack, problems, options, f"{tag}-seq", one_at_a_time=True)
    after = platform_seconds(stack)
    reset_cache(stack)
    episodes, wall = run_episodes(stack, problems, options, f"{tag}-all")
    arm = episode_arm(episodes, wall)
    arm.sequential_wall_s = sequential_wall
    arm.generation_s = sum(e.generation_s for e in one_by_one)
    arm.tool_s = sum(e.tool_s for e in one_by_one)
    arm.platform_parts_s = {part: after[part] - before.get(part, 0.0) for part in sorted(after)}
    return arm, episodes


def episode_arm(episodes: list[pb.Episode], wall_s: float) -> Arm:
    return Arm(
        problems=len(episodes),
        prompt_tokens=sum(e.usage.prompt_tokens for e in episodes),
        cached_prompt_tokens=sum(e.usage.cached_prompt_tokens for e in episodes),
        decoded_tokens=sum(e.usage.completion_tokens for e in episodes),
        wall_s=wall_s,
        correct=sum(e.score.correct for e in episodes),
        steps=sum(e.steps for e in episodes),
    )


def tokenizer(stub: generation_pb2_grpc.GenerationServiceStub):  # noqa: ANN201
    """Pieces to ids with the engine's tokenizer, as the generation service tokenises a context."""

    def tokenize_pieces(texts: list[str]) -> list[list[int]]:
        reply = stub.Tokenize(generation_pb2.TokenizeRequest(pieces=texts), timeout=60)
        return [list(piece.token_ids) for piece in reply.pieces]

    return tokenize_pieces


def block_recompute(stack: LocalStack, episodes: list[pb.Episode], block_size: int) -> int:
    """Tokens the prefix cache cannot serve however well it works: for every generation
    call after an episode's first, the last partial KV block of what the previous call
    left computed (its prompt and the ids it wrote)."""
    with channel(stack.addr("generation")) as ch:
        tokenize_pieces = tokenizer(generation_pb2_grpc.GenerationServiceStub(ch))
        total = 0
        for episode in episodes:
            calls = [j for j, span in enumerate(episode.spans) if span.token_ids]
            for j in calls[:-1]:
                before = pb.Episode(spans=episode.spans[:j])
                computed = len(context_token_ids(before, tokenize_pieces)) + len(episode.spans[j].token_ids)
                total += computed % block_size
    return total


def uninterrupted(stack: LocalStack, episodes: list[pb.Episode]) -> Arm:
    """(a): per problem, one call from its prompt to its (b) episode's full length."""
    with channel(stack.addr("generation")) as ch:
        stub = generation_pb2_grpc.GenerationServiceStub(ch)
        tokenize_pieces = tokenizer(stub)

        plans = []
        for episode in episodes:
            (prompt,) = tokenize_pieces([episode.spans[0].text])
            plans.append((prompt, len(context_token_ids(episode, tokenize_pieces)) - len(prompt)))

        def generate(plan: tuple[list[int], int]) -> generation_pb2.GenerateResponse:
            prompt, length = plan
            sampling = pb.SamplingParams(temperature=0.0, max_tokens=length, ignore_eos=True)
            request = generation_pb2.GenerateRequest(prompt_token_ids=prompt, sampling=sampling)
            return stub.Generate(request, timeout=600)

        start = time.time()
        for plan in plans:
            generate(plan)
        sequential_wall = time.time() - start
        start = time.time()
        with ThreadPoolExecutor(max_workers=len(plans)) as pool:
            replies = list(pool.map(generate, plans))
        wall = time.time() - start
    return Arm(
        sequential_wall_s=sequential_wall,
        generation_s=sequential_wall,
        problems=len(replies),
        prompt_tokens=sum(r.usage.prompt_tokens for r in replies),
        cached_prompt_tokens=sum(r.usage.cached_prompt_tokens for r in replies),
        decoded_tokens=sum(r.usage.completion_tokens for r in replies),
        wall_s=wall,
        steps=len(replies),
    )


def run(console: Console) -> dict:
    problems = bench_problems(PROBLEMS)
    run_dir = new_run_dir("bench-hint-infer")
    console.log(f"{len(problems)} problems from {PROBLEMS.name}; runs in {run_dir}")
    warmup = hint_infer_options(True)
    with bench_stack(run_dir, True, console) as stack:
        run_episodes(stack, problems[:2], warmup, "warmup")  # sandbox pool and engine warm
        cached, cached_episodes = hint_infer_arm(stack, problems, "cached")
    with bench_stack(run_dir, False, console) as stack:
        run_episodes(stack, problems[:2], warmup, "warmup")
        uncached, _ = hint_infer_arm(stack, problems, "uncached")
        plain = uninterrupted(stack, cached_episodes)
        forced = block_recompute(stack, cached_episodes, BLOCK_SIZE)

    arms = {"a": plain, "b": cached, "c": uncached}
    console.print(arms_table(arms))
    console.print(time_table(arms))
    limit = plain.computed + forced
    cached_platform = cached.sequential_wall_s - cached.generation_s - cached.tool_s
    figures = {
        "problems": len(problems),
        "kv_block_size": BLOCK_SIZE,
        "arms": {
            key: {**asdict(arm), "prefilled_tokens": arm.prefilled, "computed_tokens": arm.computed}
            for key, arm in zip(("uninterrupted", "cache_on", "cache_off"), arms.values(), strict=True)
        },
        "cache_on_computed_ratio": cached.computed / plain.computed,
        # The limit: (a) plus each later call's last partial block (the cache keeps whole blocks).
        "limit_tokens": limit,
        "block_recompute_tokens": forced,
        "cache_on_computed_over_limit": cached.computed / limit,
        "cache_on_generation_time_ratio": cached.generation_s / plain.sequential_wall_s,
        "cache_on_platform_share": cached_platform / cached.sequential_wall_s,
        # Steps are counted on the all-at-once run: the same greedy episodes.
        "platform_s_per_step": cached_platform / max(1, cached.steps),
        "cache_on_wall_ratio": cached.sequential_wall_s / plain.sequential_wall_s,
        "cache_on_wall_ratio_all_at_once": cached.wall_s / plain.wall_s,
        "cache_off_computed_ratio": uncached.computed / plain.computed,
        "cache_off_wall_ratio": uncached.sequential_wall_s / plain.sequential_wall_s,
        "cache_off_wall_ratio_all_at_once": uncached.wall_s / plain.wall_s,
        "cache_on_cached_share": cached.cached_prompt_tokens / cached.prompt_tokens,
        "prefill_saved_by_cache": 1 - cached.prefilled / uncached.prefilled,
        # Re-prefilled per generation call: vLLM caches whole KV blocks only.
        "recomputed_tokens_per_call": (cached.computed - plain.computed) / max(1, generation_calls(cached_episodes)),
    }
    figures["floors"] = {
        "computed_over_limit": figures["cache_on_computed_over_limit"] <= TOKENS_OVER_LIMIT_FLOOR,
        "generation_time": figures["cache_on_generation_time_ratio"] <= GENERATION_TIME_FLOOR,
        "platform_share": figures["cache_on_platform_share"] <= PLATFORM_SHARE_FLOOR,
        "all_at_once_wall": figures["cache_on_wall_ratio_all_at_once"] <= ALL_AT_ONCE_WALL_FLOOR,
    }
    figures["floors_met"] = all(figures["floors"].values())
    console.print(floors_table(figures))
    console.print(
        f"hint-infer with the cache computes {figures['cache_on_computed_ratio']:.3f}x the tokens of one "
        f"uninterrupted generation, {figures['cache_on_computed_over_limit']:.3f}x the limit the cache's "
        f"{BLOCK_SIZE}-token blocks allow; without the cache {figures['cache_off_computed_ratio']:.2f}x. The cache "
        f"saves {figures['prefill_saved_by_cache']:.0%} of hint-infer's prefill; each generation call still "
        f"recomputes {figures['recomputed_tokens_per_call']:.0f} tokens (its last, partial KV block)."
    )
    return figures


def floors_table(figures: dict) -> Table:
    table = Table(title="issue 15's floors", caption="one problem at a time unless said")
    for column in ("figure", "measured", "floor", "met"):
        table.add_column(column, justify="right")
    rows = [
        ("computed tokens / limit", figures["cache_on_computed_over_limit"], f"<= {TOKENS_OVER_LIMIT_FLOOR}",
         "computed_over_limit"),
        ("generation time / uninterrupted", figures["cache_on_generation_time_ratio"], f"<= {GENERATION_TIME_FLOOR}",
         "generation_time"),
        ("platform share of wall time", figures["cache_on_platform_share"], f"<= {PLATFORM_SHARE_FLOOR}",
         "platform_share"),
        ("all at once: wall / uninterrupted", figures["cache_on_wall_ratio_all_at_once"],
         f"<= {ALL_AT_ONCE_WALL_FLOOR}", "all_at_once_wall"),
    ]
    for name, value, floor, key in rows:
        table.add_row(name, f"{value:.3f}", floor, "yes" if figures["floors"][key] else "NO")
    return table


def generation_calls(episodes: list[pb.Episode]) -> int:
    """Generation calls that wrote something: each leaves one span with the engine's ids
    (text the platform appends always separates two of them)."""
    return sum(1 for e in episodes for s in e.spans if s.token_ids)


def arms_table(arms: dict[str, Arm]) -> Table:
    base = arms["a"]
    table = Table(
        title="hint-infer: tokens the engine computed, and time",
        caption="a: one uninterrupted call per problem; b: hint-infer, prefix cache on; c: cache off\n"
        "computed = prefilled + decoded; 1-by-1: one problem at a time; all: all at once",
    )
    for column in (
        "arm",
        "prompt",
        "cached",
        "prefilled",
        "decoded",
        "computed",
        "x a",
        "1-by-1 s",
        "x a",
        "all s",
        "x a",
        "correct",
    ):
        table.add_column(column, justify="right")
    for name, arm in arms.items():
        table.add_row(
            name,
            f"{arm.prompt_tokens}",
            f"{arm.cached_prompt_tokens}",
            f"{arm.prefilled}",
            f"{arm.decoded_tokens}",
            f"{arm.computed}",
            f"{arm.computed / base.computed:.3f}",
            f"{arm.sequential_wall_s:.2f}",
            f"{arm.sequential_wall_s / base.sequential_wall_s:.2f}",
            f"{arm.wall_s:.2f}",
            f"{arm.wall_s / base.wall_s:.2f}",
            "-" if name == "a" else f"{arm.correct}/{arm.problems}",
        )
    return table


PLATFORM_PARTS = ("load", "hints", "save", "queue")


def time_table(arms: dict[str, Arm]) -> Table:
    table = Table(
        title="where the time goes, one problem at a time (seconds, all problems)",
        caption="platform = wall - generation - tools; of it, the worker's load (Redis read), hints (the policy "
        "over gRPC), save (Redis compare-and-set), queue (publish the next step); rest: gRPC calls' own "
        "overhead, the client's submit and watch",
    )
    for column in ("arm", "generation", "tools (gVisor)", "platform", *PLATFORM_PARTS, "rest", "total"):
        table.add_column(column, justify="right")
    for name, arm in arms.items():
        platform = arm.sequential_wall_s - arm.generation_s - arm.tool_s
        parts = [arm.platform_parts_s.get(part, 0.0) for part in PLATFORM_PARTS]
        table.add_row(
            name,
            f"{arm.generation_s:.2f}",
            f"{arm.tool_s:.2f}",
            f"{platform:.2f}",
            *(f"{part:.2f}" for part in parts),
            f"{platform - sum(parts):.2f}",
            f"{arm.sequential_wall_s:.2f}",
        )
    return table
