"""Settings for every process of the platform, from environment variables and flags.

One mechanism everywhere: a pydantic-settings class per service, read from
`START_<SERVICE>_<FIELD>` environment variables; flags (`startctl serve X --set k=v`)
arrive as init arguments and win over the environment. Addresses of the other services
are settings too, so the same code runs on loopback and in a cluster.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
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
    health_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Plaintext port serving only grpc.health.v1, for kubelet's grpc probe, which cannot do TLS; "
        "0 is off (services/common/auth.py).",
    )


class PeerAddresses(BaseSettings):
    """Where the other services are; the orchestrator and scoring read these."""

    model_config = SettingsConfigDict(env_prefix="START_", extra="ignore")

    generation_addr: str = f"127.0.0.1:{DEFAULT_PORTS['generation']}"
    hints_addr: str = f"127.0.0.1:{DEFAULT_PORTS['hints']}"
    sandbox_addr: str = f"127.0.0.1:{DEFAULT_PORTS['sandbox']}"
    scoring_addr: str = f"127.0.0.1:{DEFAULT_PORTS['scoring']}"
    orchestrator_addr: str = f"127.0.0.1:{DEFAULT_PORTS['orchestrator']}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Which generation replica takes each call of an episode (services/orchestrator/routing.py).
    generation_replicas: str = Field(
        "",
        description="Generation replicas as host:port,host:port; an episode's steps stay on one of them. "
        "Empty: generation_discovery, else generation_addr alone.",
    )
    generation_discovery: str = Field(
        "",
        description="host:port of a headless Service whose DNS name gives every ready generation replica, "
        "re-resolved every generation_discovery_interval_s (in a cluster, instead of generation_replicas).",
    )
    generation_discovery_interval_s: float = Field(5.0, gt=0, description="Seconds between two DNS look-ups.")
    generation_routing: Literal["affinity", "round_robin"] = Field(
        "affinity",
        description="affinity: an episode's steps go to the replica its id hashes to (its prefix is cached there); "
        "round_robin: each call to the next replica (the baseline `startctl bench routing` compares against).",
    )
    generation_max_inflight_per_replica: int = Field(
        64,
        ge=1,
        description="Calls this process keeps in flight on one replica before an episode's step spills to the "
        "least-loaded other one (the engine's max_num_seqs: beyond it, calls queue in the engine).",
    )
    generation_cooldown_s: float = Field(
        5.0,
        gt=0,
        description="Seconds a replica that answered UNAVAILABLE (or RESOURCE_EXHAUSTED) is passed over.",
    )

    @field_validator("generation_replicas")
    @classmethod
    def _replica_list(cls, value: str) -> str:
        """host:port,host:port with spaces dropped; a clear error naming the bad entry."""
        entries = [entry.strip() for entry in value.split(",")] if value.strip() else []
        for entry in entries:
            _check_host_port(entry, "generation_replicas")
        if len(set(entries)) != len(entries):
            raise ValueError(f"generation_replicas lists a replica twice: {value!r}")
        return ",".join(entries)

    @field_validator("generation_discovery")
    @classmethod
    def _discovery_name(cls, value: str) -> str:
        value = value.strip()
        if value:
            _check_host_port(value, "generation_discovery")
        return value

    @model_validator(mode="after")
    def _one_source_of_replicas(self) -> PeerAddresses:
        if self.generation_replicas and self.generation_discovery:
            raise ValueError("set generation_replicas (a list) or generation_discovery (a DNS name), not both")
        return self


class AuthSettings(BaseSettings):
    """Who may call a service, and how a caller proves it (services/common/auth.py).

    The same variables for every server and every client of the platform, so a pod's
    one identity serves both ways: its certificate is the server certificate and the
    client certificate. All empty (the default): plaintext, no token, as on loopback.
    """

    model_config = SettingsConfigDict(env_prefix="START_", extra="ignore")

    tls_cert_file: str = Field("", description="PEM certificate chain: the server's, and the client's when calling.")
    tls_key_file: str = Field("", description="PEM private key of tls_cert_file.")
    tls_ca_file: str = Field(
        "", description="PEM CA bundle: servers require client certificates it signed; clients verify servers by it."
    )
    tls_server_name: str = Field(
        "",
        description="Name a client checks in the server's certificate instead of the address's host "
        "(for addresses that are IPs, such as generation replicas found by DNS).",
    )
    auth_token: SecretStr = Field(SecretStr(""), description="Bearer token servers require and clients send.")
    auth_token_file: str = Field(
        "", description="File holding the bearer token (a mounted Secret), instead of auth_token."
    )


# host:port, where host is a DNS name, an IPv4 address or a bracketed IPv6 address.
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?):([0-9]{1,5})$")


def _check_host_port(entry: str, setting: str) -> None:
    match = _HOST_PORT.match(entry)
    if match is None or not 0 < int(match.group(3)) <= 65535:
        raise ValueError(
            f"{setting}: {entry!r} is not host:port (a name or IP, then a port in 1-65535; "
            f"[::1]:50051 for IPv6); give host:port,host:port"
        )


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
