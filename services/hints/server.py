"""The hints gRPC server: a thin adapter over the hint policy and its libraries.

`startctl serve hints` runs it; the orchestrator's workers call `NextAction` at every stop
of the model. Settings come from `START_HINTS_*` environment variables.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.runtime import serve
from services.common.settings import ServiceSettings
from services.hints.library import LibraryCatalog
from services.hints.policy import DEFAULT_REFLECTION_WORDS, HintPolicy
from services.hints.validate import library_exists, validate_next_action
from start.v1 import hints_pb2 as hpb
from start.v1 import hints_pb2_grpc


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="START_HINTS_", extra="forbid")

    library_dir: Path | None = Field(
        None, description="Directory of the user's own *.yaml hint libraries, added to the built-in ones."
    )
    default_library: str = Field("math", description="Library of math and multiple-choice episodes.")
    code_library: str = Field("code", description="Library of code-task episodes.")
    reflection_words: list[str] = Field(
        list(DEFAULT_REFLECTION_WORDS),
        min_length=1,
        description='Words after which a hint may go, as JSON: ["Wait", "Alternatively"].',
    )


def build_policy(settings: Settings) -> HintPolicy:
    """The policy over the catalog; stops at start with a clear message on a bad library."""
    catalog = LibraryCatalog(settings.library_dir)
    for name in (settings.default_library, settings.code_library):
        if catalog.get(name) is None:
            raise SystemExit(f"hints: library {name!r} not found; known: {', '.join(catalog.names())}")
    return HintPolicy(catalog, settings.reflection_words, settings.default_library, settings.code_library)


class HintServicer(hints_pb2_grpc.HintServiceServicer):
    def __init__(self, policy: HintPolicy) -> None:
        self.policy = policy

    async def NextAction(self, request: hpb.NextActionRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        validate_next_action(request, self.policy)
        return self.policy.next_action(request.view, request.stop_reason, request.stop_string)

    async def ListHints(self, request: hpb.ListHintsRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        name = request.library or self.policy.default_library
        library = library_exists(self.policy, name, "library")
        return hpb.ListHintsResponse(
            library=library.name,
            version=library.version,
            hints=[hpb.Hint(id=h.id, category=h.category, text=h.text, weight=h.weight) for h in library.hints],
        )


async def serve_forever(settings: Settings) -> None:
    policy = build_policy(settings)

    def register(server: grpc.aio.Server) -> list[str]:
        hints_pb2_grpc.add_HintServiceServicer_to_server(HintServicer(policy), server)
        return [hpb.DESCRIPTOR.services_by_name["HintService"].full_name]

    await serve("hints", settings, register)
