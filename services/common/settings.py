"""Settings for every process of the platform, from environment variables and flags.

One mechanism everywhere: a pydantic-settings class per service, read from
`START_<SERVICE>_<FIELD>` environment variables; flags (`startctl serve X --set k=v`)
arrive as init arguments and win over the environment. Addresses of the other services
are settings too, so the same code runs on loopback and in a cluster.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Default loopback ports of the embedded deployment; a cluster overrides them by env.
DEFAULT_PORTS = {
    "orchestrator": 50050,
    "generation": 50051,
    "hints": 50052,
    "sandbox": 50053,
    "scoring": 50054,
}


class ServiceSettings(BaseSettings):
    """What every gRPC server needs: where to listen, how to log, how long to drain."""

    model_config = SettingsConfigDict(env_prefix="START_", extra="forbid", validate_default=True)

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 in a container.")
    port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port; 0 is off.")
    grace_s: float = Field(10.0, ge=0, description="Seconds to drain in-flight calls on SIGTERM.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = Field("console", description="json in a cluster.")
    max_message_mb: int = Field(64, ge=1, le=1024, description="Largest gRPC message accepted.")


class PeerAddresses(BaseSettings):
    """Where the other services are; the orchestrator and scoring read these."""

    model_config = SettingsConfigDict(env_prefix="START_", extra="ignore")

    generation_addr: str = f"127.0.0.1:{DEFAULT_PORTS['generation']}"
    hints_addr: str = f"127.0.0.1:{DEFAULT_PORTS['hints']}"
    sandbox_addr: str = f"127.0.0.1:{DEFAULT_PORTS['sandbox']}"
    scoring_addr: str = f"127.0.0.1:{DEFAULT_PORTS['scoring']}"
    orchestrator_addr: str = f"127.0.0.1:{DEFAULT_PORTS['orchestrator']}"
    redis_url: str = "redis://127.0.0.1:6379/0"


S = TypeVar("S", bound=BaseSettings)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn `key=value` flags into init arguments (pydantic converts the types)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"setting {pair!r} is not of the form key=value")
        overrides[key.strip().replace("-", "_")] = value
    return overrides


def load_settings(cls: type[S], overrides: dict[str, Any] | None = None) -> S:
    """Settings from the environment, with flags on top."""
    return cls(**(overrides or {}))
