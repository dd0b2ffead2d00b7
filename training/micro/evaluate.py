"""Check that the micro model shows START's effect: hint-infer beats greedy decoding.

    python -m training.micro.evaluate --model models/start-micro --problems data/micro/eval.jsonl
    python -m training.micro.evaluate --engine vllm --problems data/micro/demo.jsonl

A development tool, not the platform: it replays hint-infer on trusted synthetic
problems, with plain transformers generation or with vLLM's CPU build (the platform's
engine, bf16). The model's code is untrusted even here: it runs in the platform's gVisor
sandbox (a warm pool of one, the sandbox service's own code path, as `startctl sandbox
exec` runs it), and the model sees what an episode shows it (`steps.tool_output`). What
it appends is exactly what the model was trained on and what the orchestrator appends:
the strings of `services.common.text_contract`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from services.common.errors import ServiceError
from services.common.text_contract import CLOSING_FENCE, END_THINK, PYTHON_FENCE, format_tool_output
from services.hints.library import LibraryCatalog
from services.orchestrator.steps import tool_output
from services.sandbox.executor import Execution
from services.sandbox.server import Settings, build_pool, result_pb
from services.sandbox.validate import LimitPolicy
from training.micro.corpus import HINTS, chat_prompt

REFLECTION_STOP = "Wait"
MAX_NEW_TOKENS = 400

# Greedy continuation of a text up to a stop string: (new text without the stop string,
# the stop string hit, or None at end of sequence or length), as vLLM reports it.
Generate = Callable[[str, list[str]], tuple[str, str | None]]


class _StopOnText(StoppingCriteria):
    """Stops once the generated text (not the prompt) contains one of the stop strings."""

    def __init__(self, tokenizer, prompt_len: int, stops: list[str]) -> None:
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, stops

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        text = self.tokenizer.decode(input_ids[0, self.prompt_len :])
        return torch.tensor([any(s in text for s in self.stops)])


def transformers_engine(model_dir: Path) -> Generate:
    # bf16, as vLLM's CPU build runs the model on the platform.
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()

    def generate(text: str, stops: list[str]) -> tuple[str, str | None]:
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            stopping_criteria=StoppingCriteriaList([_StopOnText(tokenizer, ids.shape[1], stops)]),
        )
        new = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        hits = [(new.index(s), s) for s in stops if s in new]
        if not hits:
            return new, None
        cut, stop = min(hits)
        return new[:cut], stop

    return generate


def vllm_engine(model_dir: Path) -> Generate:
    """vLLM's CPU build, as the platform's generation service runs it. Call it under
    `if __name__ == "__main__":`: the engine starts a process of its own."""
    from vllm import LLM, SamplingParams

    # An explicit KV cache size: by default vLLM's CPU backend reserves 92% of the memory
    # node and refuses to start when other processes hold part of it.
    llm = LLM(
        model=str(model_dir),
        dtype="bfloat16",
        max_model_len=2048,
        enable_prefix_caching=True,
        kv_cache_memory_bytes=512 * 2**20,
    )

    def generate(text: str, stops: list[str]) -> tuple[str, str | None]:
        params = SamplingParams(temperature=0, max_tokens=MAX_NEW_TOKENS, stop=stops)
        out = llm.generate([text], params, use_tqdm=False)[0].outputs[0]
        return out.text, out.stop_reason if isinstance(out.stop_reason, str) else None

    return generate


class SandboxedPython:
    """Runs the model's code in one warm gVisor sandbox, started once and reused; what
    it returns is what the platform appends after a tool call (stdout, or the error's
    tail). Use it as a context manager: it owns an event loop and the sandbox."""

    TIMEOUT_S = 5.0

    def __init__(self) -> None:
        self.settings = Settings(pool_size=1, preload="")
        self.policy = LimitPolicy(self.settings)
        self.loop = asyncio.new_event_loop()
        self.pool = build_pool(self.settings)

    def __enter__(self) -> SandboxedPython:
        self.loop.run_until_complete(self.pool.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()

    def __call__(self, code: str) -> str:
        try:
            code = self.policy.code(code)
        except ServiceError as exc:  # an empty block: the sandbox refuses it, and says why
            return f"{exc.message}\n"
        execution = Execution(code=code, stdin="", limits=self.policy.limits(self.TIMEOUT_S, 0, 0))
        return tool_output(result_pb(self.loop.run_until_complete(self.pool.execute(execution))))


def last_boxed(text: str) -> str | None:
    found = re.findall(r"\\boxed\{([^{}]*)\}", text)
    return found[-1].strip() if found else None


MAX_CALLS = 8  # tool runs in one episode, whoever opened the block


def episode(
    generate: Generate, run_python: Callable[[str], str], question: str, hints: list[str]
) -> tuple[str, list[str | None]]:
    """One episode as the platform runs it. Every python block, the model's own or a
    hint's, runs in the sandbox and its output is appended; each hint (which ends by
    opening a block) goes, in turn, where the model next writes the reflection word or
    closes its thinking. No hints: greedy decoding with the tool at hand.
    Returns the response and the stop strings the engine reported, call by call."""
    prompt, response, stops, pending = chat_prompt(question), "", [], list(hints)
    for _ in range(MAX_CALLS):
        text, stop = generate(prompt + response, [PYTHON_FENCE, *([REFLECTION_STOP, END_THINK] if pending else [])])
        response += text
        stops.append(stop)
        if stop is None:  # finished (or ran out of tokens)
            return response, stops
        response += PYTHON_FENCE if stop == PYTHON_FENCE else pending.pop(0)
        code, stop = generate(prompt + response, [CLOSING_FENCE])
        response += code
        stops.append(stop)
        if stop is None:  # never closed its block: nothing to run
            return response, stops
        response += CLOSING_FENCE + format_tool_output(run_python(code))
    rest, stop = generate(prompt + response, [])
    return response + rest, [*stops, stop]


@dataclass
class Result:
    id: str
    reference: str
    greedy: str
    hint_infer: str
    stops: list[str | None]
    greedy_correct: bool
    hint_correct: bool

    @property
    def greedy_calls_the_tool(self) -> bool:
        return PYTHON_FENCE in self.greedy


def evaluate(
    generate: Generate, run_python: Callable[[str], str], problems: list[dict], hints: list[str]
) -> list[Result]:
    """Greedy and hint-infer (one hint, at the first stop) on every problem; the hint
    cycles through `hints`, each ending with an opened python block."""
    results = []
    for i, p in enumerate(problems):
        g, _ = episode(generate, run_python, p["question"], [])
        h, stops = episode(generate, run_python, p["question"], [hints[i % len(hints)]])
        ref = p["reference"]
        results.append(Result(p["id"], ref, g, h, stops, last_boxed(g) == ref, last_boxed(h) == ref))
    return results


def hint_texts(source: str) -> list[str]:
    """`micro`: the shipped model's own hint sentences (it was trained with them);
    otherwise the name of one of the platform's hint libraries, e.g. `math`."""
    if source == "micro":
        return [hint + f"\n{PYTHON_FENCE}\n" for hint in HINTS]
    library = LibraryCatalog().get(source)
    if library is None:
        raise SystemExit(f"no hint library {source!r}; there are: micro, {', '.join(LibraryCatalog().names())}")
    return [hint.text for hint in library.hints]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/start-micro"))
    parser.add_argument("--problems", type=Path, default=Path("data/micro/eval.jsonl"))
    parser.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--hints", default="micro", help="micro (the shipped model's), or a hint library: math")
    parser.add_argument("--limit", type=int, default=0, help="the first N problems only")
    parser.add_argument("--transcripts", type=Path, help="write every response here (JSONL)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    torch.set_num_threads(2)
    generate = transformers_engine(args.model) if args.engine == "transformers" else vllm_engine(args.model)
    problems = [json.loads(line) for line in args.problems.read_text().splitlines()]
    problems = problems[: args.limit] if args.limit > 0 else problems
    with SandboxedPython() as run_python:
        results = evaluate(generate, run_python, problems, hint_texts(args.hints))
    if args.transcripts:
        args.transcripts.write_text("".join(json.dumps(asdict(r)) + "\n" for r in results))
    n = len(results)
    first_stops = [r.stops[0] for r in results]
    print(f"greedy accuracy:      {sum(r.greedy_correct for r in results)}/{n}")
    print(f"hint-infer accuracy:  {sum(r.hint_correct for r in results)}/{n}")
    counts = ", ".join(f"{s!r}: {first_stops.count(s)}" for s in sorted(set(first_stops), key=str))
    print(f"hint-infer first stop: {counts}")
    print(f"greedy writes Wait:   {sum(REFLECTION_STOP in r.greedy for r in results)}/{n}")
    print(f"greedy ends thinking: {sum(END_THINK in r.greedy for r in results)}/{n}")
    print(f"greedy calls python:  {sum(r.greedy_calls_the_tool for r in results)}/{n}")
    if args.json:
        figures = {
            "problems": n,
            "greedy_accuracy": sum(r.greedy_correct for r in results) / n,
            "hint_accuracy": sum(r.hint_correct for r in results) / n,
            "greedy_tool_use": sum(r.greedy_calls_the_tool for r in results) / n,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
