"""Episode records for trying the trainer before the orchestrator has recorded real ones.

They are made from the micro model's synthetic traces (`training.micro.corpus`), typed as
the orchestrator types its spans: the chat prompt, the model's text, hints, the code the
model writes after a hint, the fenced tool output. The end-of-turn token is stripped,
as the engine strips it from real episodes. They go through the same converter as real
episodes; once real episodes exist, point the converter at those instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from services.common.episode import new_episode, to_json
from services.common.text_contract import OUTPUT_FENCE
from start.v1 import common_pb2 as pb
from training.micro.corpus import IM_END, make_corpus
from training.micro.problems import make_problems


def demo_episodes(n: int, seed: int = 0) -> list[dict]:
    records = []
    problems = make_problems(n, seed=seed, split="train")
    for problem, trace in zip(problems, make_corpus(problems, seed=seed), strict=True):
        episode = new_episode(
            pb.Problem(id=problem.id, question=problem.question, reference=problem.reference,
                       task_type=pb.TASK_TYPE_MATH),
            pb.EpisodeOptions(hints_enabled=True, max_tool_calls=6),
        )
        previous = None
        for i, segment in enumerate(trace):
            text = segment.text.removesuffix(IM_END) if i == len(trace) - 1 else segment.text
            if i == 0:
                kind = pb.SPAN_KIND_PROMPT
            elif not segment.trained:
                kind = pb.SPAN_KIND_TOOL_OUTPUT if text.lstrip("\n").startswith(OUTPUT_FENCE) else pb.SPAN_KIND_HINT
            else:
                kind = pb.SPAN_KIND_TOOL_CODE if previous == pb.SPAN_KIND_HINT else pb.SPAN_KIND_MODEL
            episode.spans.add(kind=kind, text=text)
            previous = kind
        episode.tool_calls = sum(s.kind == pb.SPAN_KIND_TOOL_CODE for s in episode.spans)
        episode.status = pb.EPISODE_STATUS_DONE
        episode.score.correct = True
        records.append(to_json(episode))
    return records


def write_demo_episodes(path: str | Path, n: int, seed: int = 0) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    records = demo_episodes(n, seed)
    with open(path, "w") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return len(records)
