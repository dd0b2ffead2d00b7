"""The vLLM engine behind the generation service: load it, run completions, watch its health.

Where it sits: the orchestrator's episode steps call the generation service for every
stretch of model text (up to a stop word, a closing python fence or `</think>`); the
servicer in `server.py` validates the call and hands it here. This module is plain Python
over vLLM's `AsyncLLM` (continuous batching across all concurrent calls, automatic prefix
caching), with no gRPC in it, so batch jobs and benchmarks can drive it directly.

Prompts reach the engine as token ids only: text is tokenised once here, so a prompt sent
as text and the same prompt sent as ids are the same request, and an episode can send its
continuation as ids to avoid re-tokenisation drift at the seam. A caller that stops
waiting (cancel, deadline) closes the async generator, and vLLM aborts the request in the
engine, so no orphan sequence keeps decoding.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from vllm import SamplingParams, TokensPrompt
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.outputs import RequestOutput
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.metrics.loggers import StatLoggerBase

from services.common.logs import get_logger
from services.generation.domain import Completion, Delta, Result, Sampling, Usage

log = get_logger("generation.engine")


@dataclass(frozen=True)
class EngineConfig:
    """What the engine is built from; `server.Settings` fills it from START_GENERATION_*."""

    model: str
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    # None takes the model's own context length (max_position_embeddings).
    max_model_len: int | None = None
    dtype: str = "auto"
    enable_prefix_caching: bool = True
    max_num_seqs: int = 64
    seed: int = 0
    # Tokens per KV block; None takes the platform's default (128 on CPU, 16 on GPU).
    block_size: int | None = None

    def engine_args(self) -> AsyncEngineArgs:
        return AsyncEngineArgs(
            model=self.model,
            tensor_parallel_size=self.tensor_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            dtype=self.dtype,
            enable_prefix_caching=self.enable_prefix_caching,
            max_num_seqs=self.max_num_seqs,
            seed=self.seed,
            block_size=self.block_size,
        )


class EngineState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    # The engine process died after it was ready.
    DEAD = "dead"
    # The engine never loaded (bad model path, not enough memory...).
    FAILED = "failed"


class EngineNotReady(Exception):
    """The engine cannot take calls now; the message says whether it is loading or dead."""


class _SchedulerGauge(StatLoggerBase):
    """Keeps the scheduler's latest request counts, as the engine process reported them.

    vLLM builds stat loggers from factories; `GenerationEngine` hands it a factory that
    returns this one instance, so the engine's own view can be read back (ModelInfo).
    """

    def __init__(self) -> None:
        self.running = 0
        self.waiting = 0

    def record(
        self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0
    ) -> None:
        if scheduler_stats is not None:
            self.running = scheduler_stats.num_running_reqs
            self.waiting = scheduler_stats.num_waiting_reqs

    def log_engine_initialized(self) -> None:
        """Nothing to log: vLLM's own loggers already do."""


class GenerationEngine:
    """One vLLM engine shared by every call of the process.

    `load()` builds it (the engine process spawns and loads weights: tens of seconds) in a
    thread, so the server keeps answering health checks (NOT_SERVING) meanwhile.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.state = EngineState.LOADING
        self.failure = ""
        self._llm: AsyncLLM | None = None
        self._tokenizer: Any = None
        self._gauge = _SchedulerGauge()

    # --- life cycle -------------------------------------------------------------------

    async def load(self) -> None:
        """Start the engine process and load the model; raises if that fails."""
        log.info("engine loading", model=self.config.model, max_model_len=self.config.max_model_len)
        try:
            self._llm = await asyncio.to_thread(
                AsyncLLM.from_engine_args,
                self.config.engine_args(),
                stat_loggers=[lambda _config, _index=0: self._gauge],
            )
            self._tokenizer = self._llm.get_tokenizer()
        except Exception as exc:
            self.state = EngineState.FAILED
            self.failure = f"{type(exc).__name__}: {exc}"
            raise
        self.state = EngineState.READY
        log.info("engine ready", model=self.config.model)

    def check_alive(self) -> bool:
        """True while the engine can serve; notices an engine process that died."""
        if self.state is EngineState.READY and self._llm is not None and self._llm.errored:
            self.state = EngineState.DEAD
            self.failure = "the engine process died"
            log.error("engine dead", model=self.config.model)
        return self.state is EngineState.READY

    def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None

    def _ready(self) -> AsyncLLM:
        if not self.check_alive() or self._llm is None:
            if self.state is EngineState.LOADING:
                raise EngineNotReady(f"engine is still loading {self.config.model}; retry shortly")
            raise EngineNotReady(f"engine is not serving ({self.state.value}): {self.failure}")
        return self._llm

    # --- what the service offers ------------------------------------------------------

    @property
    def max_model_len(self) -> int:
        """The context length the engine runs with (the model's own unless configured)."""
        if self._llm is not None:
            return self._llm.model_config.max_model_len
        return self.config.max_model_len or 0

    @property
    def vocab_size(self) -> int:
        return self._ready().model_config.get_vocab_size()

    @property
    def max_chars_per_token(self) -> int:
        self._ready()
        return self._tokenizer.max_chars_per_token

    @property
    def kv_block_size(self) -> int:
        """Tokens per KV block as the engine settled it; 0 until it is loaded."""
        return self._llm.vllm_config.cache_config.block_size if self._llm is not None else 0

    def scheduler_counts(self) -> dict[str, int]:
        """Requests running / waiting in the engine's scheduler at its last step, and unfinished."""
        unfinished = self._llm.output_processor.get_num_unfinished_requests() if self._llm is not None else 0
        return {"running": self._gauge.running, "waiting": self._gauge.waiting, "unfinished": unfinished}

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        (ids,) = await self.tokenize_pieces([text], add_special_tokens)
        return ids

    async def tokenize_pieces(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        """Each text's ids, tokenised on its own."""
        self._ready()
        encode = self._tokenizer.encode

        def encode_all() -> list[list[int]]:
            return [encode(text, add_special_tokens=add_special_tokens) for text in texts]

        # Tokenising a long context is CPU work: keep it off the event loop.
        return await asyncio.to_thread(encode_all)

    def split_at_text(self, token_ids: list[int], text: str) -> tuple[list[int], str]:
        """(ids, tail) with decode(ids) + tail == text, keeping as many generated ids as lie
        wholly inside `text`.

        A stop string left out of the output can end inside a token (" Wait" cut at "Wait"
        leaves " "): that token is dropped and its kept part becomes the tail, which the
        caller tokenises with the text it appends next, as training tokenised it.
        """
        decode = self._tokenizer.decode
        # A cut stop string spans a few tokens at most; past that, fall back to re-tokenising.
        for keep in range(len(token_ids), max(len(token_ids) - 16, 0) - 1, -1):
            prefix = decode(token_ids[:keep], skip_special_tokens=True)
            if text.startswith(prefix):
                return token_ids[:keep], text[len(prefix) :]
        return [], text

    async def _settle(self, completion: Completion) -> None:
        ids, tail = await asyncio.to_thread(self.split_at_text, completion.token_ids, completion.text)
        completion.text_token_ids, completion.text_tail = ids, tail

    async def reset_prefix_cache(self) -> bool:
        """Drop every cached prefix; False (and nothing dropped) while requests run."""
        return await self._ready().reset_prefix_cache()

    async def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        self._ready()
        return await asyncio.to_thread(
            self._tokenizer.apply_chat_template,
            messages,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Result:
        """All samples at once, when every one has finished."""
        completions = {i: Completion(index=i) for i in range(sampling.n)}
        usage = Usage(prompt_tokens=len(prompt_ids))
        async for out in self._outputs(prompt_ids, sampling, RequestOutputKind.FINAL_ONLY):
            for piece in out.outputs:
                completions[piece.index].extend(piece)
            usage.cached_prompt_tokens = max(usage.cached_prompt_tokens, out.num_cached_tokens or 0)
        for completion in completions.values():
            await self._settle(completion)
        return _result(completions, usage)

    async def stream(self, prompt_ids: list[int], sampling: Sampling, usage: Usage) -> AsyncIterator[Delta]:
        """Deltas as the engine produces them; `usage` is filled in by the time it ends."""
        completions = {i: Completion(index=i) for i in range(sampling.n)}
        usage.prompt_tokens = len(prompt_ids)
        async for out in self._outputs(prompt_ids, sampling, RequestOutputKind.DELTA):
            usage.cached_prompt_tokens = max(usage.cached_prompt_tokens, out.num_cached_tokens or 0)
            for piece in out.outputs:
                completion = completions[piece.index]
                completion.extend(piece)
                final = None
                if piece.finish_reason is not None:
                    await self._settle(completion)
                    final = completion
                yield Delta(piece.index, piece.text, list(piece.token_ids), final)
        usage.completion_tokens = sum(len(c.token_ids) for c in completions.values())

    async def _outputs(
        self, prompt_ids: list[int], sampling: Sampling, kind: RequestOutputKind
    ) -> AsyncIterator[RequestOutput]:
        llm = self._ready()
        request_id = uuid.uuid4().hex
        # Ids need no tokenising, so rendering them for the engine is cheap enough for the loop.
        (engine_input,) = llm.renderer.render_cmpl([TokensPrompt(prompt_token_ids=prompt_ids)])
        # vLLM aborts the request in the engine when this generator is closed or cancelled.
        async for out in llm.generate(engine_input, _vllm_params(sampling, kind), request_id):
            yield out


def _result(completions: dict[int, Completion], usage: Usage) -> Result:
    ordered = [completions[i] for i in sorted(completions)]
    usage.completion_tokens = sum(len(c.token_ids) for c in ordered)
    return Result(completions=ordered, usage=usage)


def _vllm_params(sampling: Sampling, kind: RequestOutputKind) -> SamplingParams:
    return SamplingParams(
        n=sampling.n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        stop=list(sampling.stop) or None,
        include_stop_str_in_output=sampling.include_stop_str_in_output,
        seed=sampling.seed,
        logprobs=sampling.logprobs or None,
        ignore_eos=sampling.ignore_eos,
        output_kind=kind,
    )
