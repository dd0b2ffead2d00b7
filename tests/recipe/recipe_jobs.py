"""Jobs' results written as real Parquet files, for the dataset and evaluation tests.

Each episode is written the way the jobs controller writes it (`results.write_part`,
`results.write_manifest`), so the builders read exactly what a job leaves behind.
"""

from __future__ import annotations

from pathlib import Path

from services.orchestrator import results
from start.v1 import common_pb2 as pb

MICRO_MODEL = str(Path(__file__).resolve().parents[2] / "models" / "start-micro")


def prompt_of(question: str) -> str:
    """The micro model's chat template rendering (its tokenizer_config.json)."""
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n<think>\n"


def tool_spans(a: int, b: int) -> list[pb.Span]:
    return [
        pb.Span(kind=pb.SPAN_KIND_MODEL, text=f"I need {a} times {b}. Wait,"),
        pb.Span(kind=pb.SPAN_KIND_HINT, text=" maybe Python can check this.\n```python\n", hint_id="math-1"),
        pb.Span(kind=pb.SPAN_KIND_TOOL_CODE, text=f"print({a} * {b})\n```"),
        pb.Span(kind=pb.SPAN_KIND_TOOL_OUTPUT, text=f"\n```output\n{a * b}\n```\n"),
        pb.Span(kind=pb.SPAN_KIND_MODEL, text=f"So it is {a * b}.\n</think>\nThe answer is \\boxed{{{a * b}}}."),
    ]


def plain_spans(answer: str) -> list[pb.Span]:
    return [pb.Span(kind=pb.SPAN_KIND_MODEL, text=f"I guess.\n</think>\nThe answer is \\boxed{{{answer}}}.")]


def episode(job_id: str, index: int, sample: int, problem: pb.Problem, spans: list[pb.Span], correct: bool,
            status: int = pb.EPISODE_STATUS_DONE) -> pb.Episode:
    e = pb.Episode(id=f"{job_id}-p{index}-s{sample}", problem=problem, status=status, job_id=job_id,
                   problem_index=index, sample_index=sample, score=pb.Score(correct=correct))
    e.options.max_tool_output_chars = 2048
    e.spans.add(kind=pb.SPAN_KIND_PROMPT, text=prompt_of(problem.question))
    e.spans.extend(spans)
    e.tool_calls = sum(s.kind == pb.SPAN_KIND_TOOL_OUTPUT for s in spans)
    return e


def problem(index: int, source: str = "micro") -> pb.Problem:
    a, b = 12 + index, 34 + index
    p = pb.Problem(id=f"mul-{index}", question=f"What is {a} * {b}?", reference=str(a * b),
                   task_type=pb.TASK_TYPE_MATH)
    p.metadata["source"] = source
    return p


def write_job(root: Path, job_id: str, arm: str, episodes: list[pb.Episode], status: str = "done",
              part_size: int = 3) -> str:
    """A job folder like the controller leaves: manifest, then parts of finished episodes."""
    url = str(root / job_id)
    results.write_manifest(url, {
        "job_id": job_id, "arm": arm, "status": status, "samples": 1 + max(e.sample_index for e in episodes),
        "problem_set": "tests/problems.jsonl", "format": "start", "problem_set_sha256": "0" * 64,
        "problems": len({e.problem_index for e in episodes}), "metadata_columns": ["source"],
        "model": MICRO_MODEL, "hint_library": "math@1", "skipped_rows": [],
    })
    for seq, start in enumerate(range(0, len(episodes), part_size)):
        results.write_part(url, seq, episodes[start:start + part_size], arm, ["source"])
    return url
