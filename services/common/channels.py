"""Client channels to START services, configured once (message size, keepalive)."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def channel(addr: str) -> grpc.Channel:
    return grpc.insecure_channel(addr, options=_OPTIONS)


def aio_channel(addr: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(addr, options=_OPTIONS)


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
