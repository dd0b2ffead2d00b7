"""The generation service: a thin gRPC adapter over `engine.GenerationEngine`.

Where it sits: the orchestrator's episode steps (and the benchmarks) call Generate for
every stretch of model text; RenderChat and Tokenize let them build prompts with the
served model's own chat template and tokenizer. Run it with `startctl serve generation`;
settings come from START_GENERATION_* (see docs/generation.md).

Health: NOT_SERVING while the engine loads (calls get UNAVAILABLE "still loading"),
SERVING once it is ready, NOT_SERVING again if the engine process dies (calls get
UNAVAILABLE "engine process died"). An engine that fails to load stops the server with
exit status 1 and the reason in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Literal

import grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from vllm.v1.engine.exceptions import EngineDeadError

from services.common.errors import Unavailable
from services.common.logs import get_logger
from services.common.runtime import ServerHandle, serve
from services.common.settings import ServiceSettings
from services.generation import validate
from services.generation.domain import Completion, Result, Sampling, Usage
from services.generation.engine import EngineConfig, EngineNotReady, EngineState, GenerationEngine
from start.v1 import common_pb2, generation_pb2, generation_pb2_grpc

log = get_logger("generation")

_FINISH = {
    "stop": generation_pb2.FINISH_REASON_STOP,
    "length": generation_pb2.FINISH_REASON_LENGTH,
    "abort": generation_pb2.FINISH_REASON_ABORT,
}


class Settings(ServiceSettings):
    """START_GENERATION_*: the engine, and the limits every request is checked against."""

    model_config = SettingsConfigDict(env_prefix="START_GENERATION_", extra="forbid", protected_namespaces=())

    model: str = Field(..., description="Model directory (Hugging Face layout) to serve.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine spans (1 on CPU).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="GPU memory fraction for weights + KV.")
    max_model_len: int = Field(
        0, ge=0, le=32768, description="Context length (prompt + completion tokens); 0 takes the model's own."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("auto", description="Weights and activations.")
    enable_prefix_caching: bool = Field(True, description="Reuse the KV of repeated prefixes (hint-infer needs it).")
    max_num_seqs: int = Field(64, ge=1, le=4096, description="Sequences decoded together in one batch, at most.")
    seed: int = Field(0, description="Engine seed (a request's own seed wins for its samples).")
    block_size: int | None = Field(None, ge=1, description="Tokens per KV block; unset takes the platform default.")
    max_n: int = Field(64, ge=1, description="Samples per call, at most.")
    max_stop_strings: int = Field(
        32, ge=0, description="Stop strings per call, at most (an episode sends each reflection word with each ending)."
    )
    max_stop_chars: int = Field(256, ge=1, description="Characters per stop string, at most.")
    max_logprobs: int = Field(20, ge=0, le=20, description="Top log-probabilities per token, at most.")
    health_interval_s: float = Field(1.0, gt=0, description="How often the engine process is checked for death.")

    def engine(self) -> EngineConfig:
        return EngineConfig(
            model=self.model,
            tensor_parallel_size=self.tensor_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len or None,
            dtype=self.dtype,
            enable_prefix_caching=self.enable_prefix_caching,
            max_num_seqs=self.max_num_seqs,
            seed=self.seed,
            block_size=self.block_size,
        )


@contextlib.contextmanager
def _engine_errors() -> Iterator[None]:
    """A loading or dead engine is UNAVAILABLE (retry elsewhere or later), with which one it is."""
    try:
        yield
    except EngineNotReady as exc:
        raise Unavailable(str(exc)) from exc
    except EngineDeadError as exc:
        raise Unavailable(f"engine process died: {exc}") from exc


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, engine: GenerationEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def _limits(self) -> validate.Limits:
        return validate.Limits(
            max_model_len=self.engine.max_model_len,
            vocab_size=self.engine.vocab_size,
            max_chars_per_token=self.engine.max_chars_per_token,
            max_n=self.settings.max_n,
            max_stop_strings=self.settings.max_stop_strings,
            max_stop_chars=self.settings.max_stop_chars,
            max_logprobs=self.settings.max_logprobs,
        )

    async def _prepare(self, request: generation_pb2.GenerateRequest) -> tuple[list[int], Sampling | None]:
        """The prompt's ids and the sampling; None for the sampling when the prompt fills
        the context and the caller asked to be told so (`fit_to_context`)."""
        limits = self._limits()
        parts, special_tokens = validate.prompt(request, limits)
        texts = [part for part in parts if isinstance(part, str)]
        tokenised = iter(await self.engine.tokenize_pieces(texts, special_tokens) if texts else [])
        ids: list[int] = []
        for part in parts:
            ids.extend(next(tokenised) if isinstance(part, str) else part)
        if request.fit_to_context and len(ids) >= limits.max_model_len:
            return ids, None
        validate.prompt_length(len(ids), limits)
        return ids, validate.sampling(request.sampling, limits, len(ids), request.fit_to_context)

    async def Generate(self, request, context) -> generation_pb2.GenerateResponse:  # noqa: ANN001, N802
        with _engine_errors():
            ids, sampling = await self._prepare(request)
            if sampling is None:
                return _context_full()
            result: Result = await self.engine.generate(ids, sampling)
        return generation_pb2.GenerateResponse(
            completions=[_completion(c) for c in result.completions], usage=_usage(result.usage)
        )

    async def GenerateStream(self, request, context) -> AsyncIterator[generation_pb2.GenerateChunk]:  # noqa: ANN001, N802
        with _engine_errors():
            ids, sampling = await self._prepare(request)
            if sampling is None:
                full = _context_full()
                yield generation_pb2.GenerateChunk(final=full.completions[0])
                yield generation_pb2.GenerateChunk(usage=full.usage)
                return
            usage = Usage()
            async for delta in self.engine.stream(ids, sampling, usage):
                yield generation_pb2.GenerateChunk(
                    index=delta.index,
                    delta_text=delta.text,
                    delta_token_ids=delta.token_ids,
                    final=_completion(delta.final) if delta.final is not None else None,
                )
        yield generation_pb2.GenerateChunk(usage=_usage(usage))

    async def Tokenize(self, request, context) -> generation_pb2.TokenizeResponse:  # noqa: ANN001, N802
        with _engine_errors():
            texts = validate.tokenize(request, self._limits())
            pieces = await self.engine.tokenize_pieces(texts, add_special_tokens=request.add_special_tokens)
            if request.text:
                return generation_pb2.TokenizeResponse(token_ids=pieces[0])
            return generation_pb2.TokenizeResponse(pieces=[generation_pb2.TokenIds(token_ids=ids) for ids in pieces])

    async def RenderChat(self, request, context) -> generation_pb2.RenderChatResponse:  # noqa: ANN001, N802
        messages = validate.chat(request)
        with _engine_errors():
            text = await self.engine.render_chat(messages, request.add_generation_prompt)
        return generation_pb2.RenderChatResponse(text=text)

    async def ResetPrefixCache(self, request, context) -> generation_pb2.ResetPrefixCacheResponse:  # noqa: ANN001, N802
        with _engine_errors():
            return generation_pb2.ResetPrefixCacheResponse(reset=await self.engine.reset_prefix_cache())

    async def ModelInfo(self, request, context) -> generation_pb2.ModelInfoResponse:  # noqa: ANN001, N802
        counts = self.engine.scheduler_counts()
        return generation_pb2.ModelInfoResponse(
            model=self.settings.model,
            max_model_len=self.engine.max_model_len,
            prefix_caching=self.settings.enable_prefix_caching,
            running_requests=counts["running"],
            waiting_requests=counts["waiting"],
            unfinished_requests=counts["unfinished"],
            kv_block_size=self.engine.kv_block_size,
        )


def _context_full() -> generation_pb2.GenerateResponse:
    """The answer to a `fit_to_context` call whose context has no room left: nothing
    written, ended by length; no usage, as nothing reached the engine."""
    completion = generation_pb2.Completion(finish_reason=generation_pb2.FINISH_REASON_LENGTH)
    return generation_pb2.GenerateResponse(completions=[completion], usage=common_pb2.Usage())


def _completion(c: Completion) -> generation_pb2.Completion:
    return generation_pb2.Completion(
        text=c.text,
        token_ids=c.token_ids,
        finish_reason=_FINISH.get(c.finish_reason, generation_pb2.FINISH_REASON_UNSPECIFIED),
        stop_string=c.stop_string,
        logprobs=c.logprobs,
        text_token_ids=c.text_token_ids,
        text_tail=c.text_tail,
    )


def _usage(u: Usage) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=u.prompt_tokens,
        cached_prompt_tokens=u.cached_prompt_tokens,
        completion_tokens=u.completion_tokens,
    )


async def serve_forever(settings: Settings) -> None:
    """Serve until SIGTERM; the engine loads in the background while health says NOT_SERVING."""
    engine = GenerationEngine(settings.engine())
    tasks: list[asyncio.Task] = []

    def register(server: grpc.aio.Server) -> Iterable[str]:
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(GenerationServicer(engine, settings), server)
        return [generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name]

    async def load_then_watch(handle: ServerHandle) -> None:
        try:
            await engine.load()
        except Exception:
            log.exception("engine failed to load; stopping", model=settings.model)
            handle.stopping.set()
            return
        await handle.set_serving(True)
        while engine.check_alive():
            await asyncio.sleep(settings.health_interval_s)
        await handle.set_serving(False)

    async def on_start(handle: ServerHandle) -> None:
        tasks.append(asyncio.create_task(load_then_watch(handle)))

    async def on_stop(handle: ServerHandle) -> None:
        # A load runs in a thread that cannot be interrupted: let it finish, then stop the engine.
        while engine.state is EngineState.LOADING:
            await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(engine.shutdown)

    await serve("generation", settings, register, on_start=on_start, on_stop=on_stop, ready_on_start=False)
    if engine.state is EngineState.FAILED:
        raise SystemExit(f"generation: engine failed to load {settings.model}: {engine.failure}")
    # Server and engine processes are stopped; exit now. Left to itself the interpreter
    # spent about 20 s more in its final garbage collection after vLLM's shutdown (a
    # faulthandler dump then showed only "Garbage-collecting", no Python frame), which
    # outlasted a supervisor's grace and made every stop of the laptop stack wait for it
    # (measured on SIGTERM: exit 21 s after "stopped" before, 0.6 s after).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
