"""Client-side helpers for episodes: submit and follow them over the orchestrator's gRPC,
and show them to a person (a transcript with hints and tool calls marked, a summary)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import grpc
from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from services.common.channels import channel
from services.common.episode import snapshots_of, to_json
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2, orchestrator_pb2_grpc

FINISHED = (pb.EPISODE_STATUS_DONE, pb.EPISODE_STATUS_FAILED)

SPAN_STYLES = {
    pb.SPAN_KIND_PROMPT: "dim",
    pb.SPAN_KIND_MODEL: "",
    pb.SPAN_KIND_HINT: "bold magenta",
    pb.SPAN_KIND_TOOL_CODE: "cyan",
    pb.SPAN_KIND_TOOL_OUTPUT: "bold green",
}


def hint_infer_options(hints: bool, think_hints: int = 1, seed: int = 0) -> pb.EpisodeOptions:
    """Options of the demo's two arms: greedy with the tool loop, and hint-infer."""
    return pb.EpisodeOptions(
        sampling=pb.SamplingParams(temperature=0.0, top_p=1.0, max_tokens=400),
        hints_enabled=hints,
        reflection_hint_probability=1.0 if hints else 0.0,
        max_think_hints=think_hints if hints else 0,
        max_tool_calls=6,
        seed=seed,
        max_total_tokens=1500,
        max_tool_output_chars=2000,
    )


def think_hint_options(k: int) -> pb.EpisodeOptions:
    """Greedy with up to K hints in place of `</think>` and none at reflection words (the
    paper's sequential test-time scaling); room for a tool call after every hint."""
    options = hint_infer_options(k > 0, think_hints=k)
    options.reflection_hint_probability = 0.0
    options.max_tool_calls = max(options.max_tool_calls, k)
    options.max_total_tokens = 3000
    return options


class OrchestratorClient:
    """The orchestrator's front door, for a person at a terminal."""

    def __init__(self, addr: str) -> None:
        self._channel = channel(addr)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)

    def submit(self, problem: pb.Problem, options: pb.EpisodeOptions, episode_id: str = "") -> str:
        request = orchestrator_pb2.SubmitEpisodeRequest(problem=problem, options=options, episode_id=episode_id)
        return self._stub.SubmitEpisode(request, timeout=30).episode_id

    def get(self, episode_id: str) -> pb.Episode:
        return self._stub.GetEpisode(orchestrator_pb2.GetEpisodeRequest(episode_id=episode_id), timeout=30)

    def watch(self, episode_id: str, timeout_s: float = 600) -> Iterable[pb.Episode]:
        """The whole episode after every step, until it is finished.

        The server streams only what each step changed (`EpisodeChange`); the snapshots are
        rebuilt here, so callers see whole episodes.
        """
        request = orchestrator_pb2.WatchEpisodeRequest(episode_id=episode_id, timeout_s=timeout_s)
        return snapshots_of(self._stub.WatchEpisode(request, timeout=timeout_s + 30))

    def wait_all(self, ids: list[str], timeout_s: float, on_done=None) -> dict[str, pb.Episode]:  # noqa: ANN001
        """Poll until every episode is finished (cheap: one small RPC per open episode)."""
        done: dict[str, pb.Episode] = {}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - len(done)} episodes not finished after {timeout_s:.0f}s")
            for episode_id in ids:
                if episode_id in done:
                    continue
                episode = self.get(episode_id)
                if episode.status in FINISHED:
                    done[episode_id] = episode
                    if on_done is not None:
                        on_done(episode)
            time.sleep(0.3)
        return done

    def close(self) -> None:
        self._channel.close()


def reachable(addr: str) -> bool:
    try:
        grpc.channel_ready_future(channel(addr)).result(timeout=1.0)
        return True
    except grpc.FutureTimeoutError:
        return False


def transcript(episode: pb.Episode) -> Group:
    """The episode's text with who wrote what: hints magenta, code cyan, tool output green."""
    body = Text()
    for span in episode.spans:
        if span.kind == pb.SPAN_KIND_HINT:
            body.append(f"[hint:{span.hint_category or span.hint_id}] ", style="reverse magenta")
        if span.kind == pb.SPAN_KIND_TOOL_OUTPUT:
            body.append("[sandbox] ", style="reverse green")
        body.append(span.text, style=SPAN_STYLES.get(span.kind, ""))
    status = pb.EpisodeStatus.Name(episode.status).removeprefix("EPISODE_STATUS_")
    verdict = "correct" if episode.score.correct else f"wrong ({episode.score.reason or 'no reason'})"
    footer = Text(
        f"status {status} | answer {episode.score.extracted!r} vs reference {episode.problem.reference!r}: "
        f"{verdict} | tool calls {episode.tool_calls} | hints {episode.think_hints + episode.reflection_hints}"
        f" | tokens {episode.generated_tokens} | cached prompt tokens {episode.usage.cached_prompt_tokens}"
        f"/{episode.usage.prompt_tokens}"
        + (f" | error {episode.error}" if episode.error else "")
    )
    return Group(Panel(body, title=f"episode {episode.id}", title_align="left"), footer)


def write_episodes(episodes: Iterable[pb.Episode], path: Path) -> None:
    with path.open("w") as out:
        for episode in episodes:
            out.write(json.dumps(to_json(episode)) + "\n")


def print_transcript(console: Console, episode: pb.Episode) -> None:
    console.print(transcript(episode))
