"""The scoring gRPC server: a thin adapter over `Scorer` (pool of graders + sandbox client).

`startctl serve scoring` runs it; the orchestrator calls `Score` at the end of every
episode and the dataset builders call `DetectRepetition`. Settings come from
`START_SCORING_*` environment variables; the sandbox address from `START_SANDBOX_ADDR`.
"""

from __future__ import annotations

import os

import grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.runtime import ServerHandle, serve
from services.common.settings import PeerAddresses, ServiceSettings
from services.scoring.code import SandboxGrader
from services.scoring.graders import MATH, grade
from services.scoring.pool import GraderPool
from services.scoring.repetition import RepetitionThresholds
from services.scoring.scorer import Scorer
from services.scoring.validate import validate_repetition, validate_score
from start.v1 import scoring_pb2, scoring_pb2_grpc


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="START_SCORING_", extra="forbid")

    workers: int = Field(os.cpu_count() or 2, ge=1, le=256, description="Grader processes.")
    per_answer_timeout_s: float = Field(
        5.0, gt=0, le=600, description="Budget per math/choice answer; the worker is killed past it."
    )
    worker_memory_mb: int = Field(2048, ge=0, description="Address-space cap per grader process; 0 is none.")
    max_batch: int = Field(1024, ge=1, description="Items per Score call, at most.")
    max_response_bytes: int = Field(2 * 1024 * 1024, ge=1, description="Largest response (and reference).")
    cache_size: int = Field(100_000, ge=0, description="Verdicts remembered across batches.")
    code_test_timeout_s: float = Field(10.0, gt=0, description="Wall-time limit per code test in the sandbox.")
    code_memory_mb: int = Field(512, ge=16, description="Memory limit per code test in the sandbox.")
    code_rpc_timeout_s: float = Field(300.0, gt=0, description="Deadline of one RunTests call.")
    repetition_max_duplicate_line_fraction: float = Field(0.3, gt=0, le=1)
    repetition_max_duplicate_paragraph_fraction: float = Field(0.3, gt=0, le=1)
    repetition_max_duplicate_ngram_fraction: float = Field(0.7, gt=0, le=1)
    repetition_ngram_words: int = Field(10, ge=2)
    repetition_min_line_chars: int = Field(20, ge=1)
    repetition_min_compression_ratio: float = Field(0.08, gt=0, lt=1)
    repetition_compression_min_chars: int = Field(2000, ge=1)

    def repetition_thresholds(self) -> RepetitionThresholds:
        return RepetitionThresholds(
            max_duplicate_line_fraction=self.repetition_max_duplicate_line_fraction,
            max_duplicate_paragraph_fraction=self.repetition_max_duplicate_paragraph_fraction,
            max_duplicate_ngram_fraction=self.repetition_max_duplicate_ngram_fraction,
            ngram_words=self.repetition_ngram_words,
            min_line_chars=self.repetition_min_line_chars,
            min_compression_ratio=self.repetition_min_compression_ratio,
            compression_min_chars=self.repetition_compression_min_chars,
        )


def build_scorer(settings: Settings, sandbox_addr: str | None = None) -> Scorer:
    """The scorer the server and `startctl score batch` share."""
    sandbox = SandboxGrader(
        sandbox_addr or PeerAddresses().sandbox_addr,
        settings.code_test_timeout_s,
        settings.code_memory_mb,
        settings.code_rpc_timeout_s,
    )
    pool = GraderPool(settings.workers, settings.per_answer_timeout_s, settings.worker_memory_mb)
    return Scorer(pool, sandbox, settings.repetition_thresholds(), settings.cache_size)


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, scorer: Scorer, settings: Settings) -> None:
        self.scorer = scorer
        self.settings = settings

    async def Score(self, request: scoring_pb2.ScoreRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        items = validate_score(request, self.settings.max_batch, self.settings.max_response_bytes)
        verdicts = await self.scorer.score(items)
        return scoring_pb2.ScoreResponse(
            results=[
                scoring_pb2.ScoreResult(correct=v.correct, extracted=v.extracted, reason=v.reason, wall_ms=v.wall_ms)
                for v in verdicts
            ]
        )

    async def DetectRepetition(  # noqa: N802
        self, request: scoring_pb2.RepetitionRequest, context: grpc.aio.ServicerContext
    ):
        text = validate_repetition(request, self.settings.max_response_bytes)
        verdict = await self.scorer.detect_repetition(text)
        return scoring_pb2.RepetitionResponse(score=verdict.score, repetitive=verdict.repetitive, reason=verdict.reason)


async def serve_forever(settings: Settings) -> None:
    scorer = build_scorer(settings)

    def register(server: grpc.aio.Server) -> list[str]:
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server(ScoringServicer(scorer, settings), server)
        return [scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name]

    async def on_start(handle: ServerHandle) -> None:
        # Grade one answer so the forkserver and workers are up before we say SERVING.
        await scorer.pool.run(grade, MATH, "\\boxed{\\frac{1}{2}}", "0.5")

    async def on_stop(handle: ServerHandle) -> None:
        await scorer.close()

    await serve("scoring", settings, register, on_start=on_start, on_stop=on_stop)
