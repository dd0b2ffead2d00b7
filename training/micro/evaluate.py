"""Check that the micro model shows START's effect: hint-infer beats greedy decoding.

    python -m training.micro.evaluate --model models/start-micro --problems data/micro/eval.jsonl
    python -m training.micro.evaluate --model models/start-micro --vllm   # does vLLM's CPU build load it?

A development tool, not the platform: it replays hint-infer with plain transformers
generation on trusted synthetic problems and runs the model's code with a bare
`subprocess` (the platform uses its gVisor sandbox). The text it appends is exactly
what the model was trained on (`training.micro.corpus`), so it is also the reference
for what the orchestrator must append.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from training.micro.corpus import FENCE, HINTS, THINK_CLOSE, chat_prompt, output_block

REFLECTION_STOP = "Wait"
MAX_NEW_TOKENS = 400


class _StopOnText(StoppingCriteria):
    """Stops once the generated text (not the prompt) contains one of the stop strings."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_len: int, stops: list[str]) -> None:
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, stops

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        text = self.tokenizer.decode(input_ids[0, self.prompt_len :])
        return torch.tensor([any(s in text for s in self.stops)])


def continue_text(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, stops: list[str]
) -> tuple[str, str | None]:
    """Greedy continuation of `text`, cut before the first stop string: (new text, stop hit).

    Like vLLM, the stop string is left out of the returned text; end of sequence gives None.
    """
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


def run_python(code: str) -> str:
    """What the tool prints: stdout, then stderr if the code failed."""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return "TimeoutError: the code ran past 5 s\n"
    return done.stdout + (done.stderr if done.returncode else "")


def last_boxed(text: str) -> str | None:
    found = re.findall(r"\\boxed\{([^{}]*)\}", text)
    return found[-1].strip() if found else None


@dataclass
class Result:
    id: str
    reference: str
    greedy: str
    hint_infer: str
    greedy_correct: bool
    hint_correct: bool


def greedy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, question: str) -> str:
    response, _ = continue_text(model, tokenizer, chat_prompt(question), [])
    return response


def hint_infer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, question: str, hint: str) -> str:
    """One hint, one tool call: stop at the first reflection word or end of thinking,
    put the hint there, let the model write code up to the closing fence, run it, append
    its output and let the model finish."""
    prompt = chat_prompt(question)
    response, stop = continue_text(model, tokenizer, prompt, [REFLECTION_STOP, THINK_CLOSE])
    if stop is None:  # finished without reflecting or closing its thinking: nothing to hint
        return response
    response += hint
    code, stop = continue_text(model, tokenizer, prompt + response, [FENCE])
    response += code + FENCE
    if stop is None:  # never closed its block: nothing to run
        return response
    response += output_block(run_python(code))
    rest, _ = continue_text(model, tokenizer, prompt + response, [])
    return response + rest


def evaluate(model_dir: Path, problems_path: Path) -> list[Result]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    results = []
    for i, line in enumerate(problems_path.read_text().splitlines()):
        p = json.loads(line)
        g = greedy(model, tokenizer, p["question"])
        h = hint_infer(model, tokenizer, p["question"], HINTS[i % len(HINTS)] + "\n```python\n")
        results.append(
            Result(p["id"], p["reference"], g, h, last_boxed(g) == p["reference"], last_boxed(h) == p["reference"])
        )
    return results


def check_vllm(model_dir: Path) -> None:
    """Load the model in vLLM (CPU build) and stop at a reflection word, as the platform does."""
    from vllm import LLM, SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 4821 * 7393? Put the final answer in \\boxed{}."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    # An explicit KV cache size: by default vLLM's CPU backend reserves 92% of the memory
    # node and refuses to start when other processes hold part of it.
    llm = LLM(
        model=str(model_dir),
        dtype="bfloat16",
        max_model_len=2048,
        enable_prefix_caching=True,
        kv_cache_memory_bytes=512 * 2**20,
    )
    for stop in ([REFLECTION_STOP], [THINK_CLOSE], []):
        out = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=MAX_NEW_TOKENS, stop=stop))[0].outputs[0]
        print(f"stop={stop} finish_reason={out.finish_reason} stop_reason={out.stop_reason!r}\n{out.text!r}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/start-micro"))
    parser.add_argument("--problems", type=Path, default=Path("data/micro/eval.jsonl"))
    parser.add_argument("--transcripts", type=Path, help="write every response here (JSONL)")
    parser.add_argument("--vllm", action="store_true", help="only check that vLLM loads and stops")
    args = parser.parse_args()
    if args.vllm:
        check_vllm(args.model)
        return
    torch.set_num_threads(2)
    results = evaluate(args.model, args.problems)
    if args.transcripts:
        args.transcripts.write_text("".join(json.dumps(r.__dict__) + "\n" for r in results))
    n = len(results)
    print(f"greedy accuracy:      {sum(r.greedy_correct for r in results)}/{n}")
    print(f"hint-infer accuracy:  {sum(r.hint_correct for r in results)}/{n}")


if __name__ == "__main__":
    main()
