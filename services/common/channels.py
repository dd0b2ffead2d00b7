"""Client channels to START services, configured once (message size, keepalive, and
authentication from services/common/auth.py), and the keepalive policy both ends of every
channel agree on.

Keepalive: a worker holds its channels open for hours, often idle or waiting on a long
call, so the client pings every `keepalive_time_ms()` (30 s), with or without calls in
flight and without gRPC's default cap of two pings between data frames, and drops a
connection whose ping goes unanswered (a frozen or vanished peer) rather than wait on it.
A gRPC server takes a ping sooner than it expects for abuse, and at the third such
strike answers GOAWAY ENHANCE_YOUR_CALM "too_many_pings", failing the calls in flight; by
default it expects pings at most every five minutes, and every two hours on a
connection with no call. So the servers (services/common/runtime.py) take
`server_keepalive_options()`, which accept a ping every half of the clients' interval,
calls or none. The numbers live here only; `START_GRPC_KEEPALIVE_TIME_MS` changes them
for both ends at once (the tests shorten it to a second).
"""

from __future__ import annotations

import os
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.auth import load_auth

KEEPALIVE_TIME_ENV = "START_GRPC_KEEPALIVE_TIME_MS"
DEFAULT_KEEPALIVE_TIME_MS = 30_000
# A ping not answered within this closes the connection; the next call reconnects.
KEEPALIVE_TIMEOUT_MS = 20_000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def keepalive_time_ms() -> int:
    """How often clients ping an idle connection: START_GRPC_KEEPALIVE_TIME_MS, else 30 s."""
    raw = os.environ.get(KEEPALIVE_TIME_ENV, "")
    if not raw:
        return DEFAULT_KEEPALIVE_TIME_MS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 100:
        raise ValueError(f"{KEEPALIVE_TIME_ENV} must be a whole number of milliseconds >= 100, not {raw!r}")
    return value


def keepalive_timeout_ms() -> int:
    """How long a ping may go unanswered: 20 s, or twice a shorter interval."""
    return min(KEEPALIVE_TIMEOUT_MS, 2 * keepalive_time_ms())


def client_options() -> list[tuple[str, Any]]:
    """Channel arguments of every client channel."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", keepalive_time_ms()),
        ("grpc.keepalive_timeout_ms", keepalive_timeout_ms()),
        # The timeout gRPC (1.85) actually applies to an unanswered ping: without it, one
        # minute, whatever keepalive_timeout_ms says.
        ("grpc.http2.ping_timeout_ms", keepalive_timeout_ms()),
        ("grpc.keepalive_permit_without_calls", 1),
        # No cap on pings between data frames: by default gRPC stops pinging an idle
        # connection after two, and a peer that froze after that goes unnoticed.
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_keepalive_options() -> list[tuple[str, Any]]:
    """Server channel arguments that accept the clients' pings (see the module docstring)."""
    return [
        # Idle connections (no call in flight) count as active ones for the ping policy;
        # without it the server expects at most one ping in two hours on them.
        ("grpc.keepalive_permit_without_calls", 1),
        # Half the clients' interval: a ping that arrives a little early (a busy host, a
        # timer's slack) is still no strike.
        ("grpc.http2.min_ping_interval_without_data_ms", keepalive_time_ms() // 2),
    ]


def channel(addr: str, service_config: str = "") -> grpc.Channel:
    """A client channel to addr; `service_config` (gRPC's JSON service config) adds per-method
    settings such as a retry policy (services/orchestrator/peers.py has the one it uses)."""
    options = client_options()
    if service_config:
        options.append(("grpc.service_config", service_config))
    return _open(grpc, addr, options)


def aio_channel(addr: str) -> grpc.aio.Channel:
    return _open(grpc.aio, addr, client_options())


def _open(api: Any, addr: str, options: list[tuple[str, Any]]) -> Any:
    """A channel from `api` (grpc or grpc.aio) with this process' authentication
    (services/common/auth.py: mTLS and the bearer token when START_TLS_* are set)."""
    auth = load_auth()
    if not auth.tls:
        return api.insecure_channel(addr, options=options)
    return api.secure_channel(addr, auth.channel_credentials(), options=[*options, *auth.client_options()])


def wait_serving(addr: str, timeout_s: float = 60.0, service: str = "") -> None:
    """Block until the server at addr reports SERVING on the standard health service."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    with channel(addr) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last_error = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last_error = exc.code().name
            time.sleep(0.2)
    raise TimeoutError(f"{addr} not SERVING after {timeout_s:.0f}s (last: {last_error})")
