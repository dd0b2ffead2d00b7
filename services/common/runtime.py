"""The one way every START service runs as a gRPC server.

`run_server` builds a grpc.aio server with the standard health service (per service
name, NOT_SERVING until the service says it is ready), reflection, a Prometheus
/metrics endpoint, structured logs and an interceptor that turns `ServiceError`s into
status codes. Its port takes the process' authentication (services/common/auth.py: mutual
TLS and a bearer token when START_TLS_* and START_AUTH_TOKEN* are set), and, for kubelet's
grpc probe, health alone may also be served in plaintext on `health_port`. On SIGTERM or
SIGINT it marks itself NOT_SERVING, drains in-flight calls for `grace_s`, then runs the
service's own clean-up.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from services.common.auth import AuthConfigError, load_auth
from services.common.channels import server_keepalive_options
from services.common.errors import ServiceError
from services.common.logs import configure_logging, get_logger
from services.common.settings import ServiceSettings

log = get_logger("runtime")

RPC_TOTAL = Counter("start_grpc_requests_total", "gRPC calls handled", ["method", "code"])
RPC_SECONDS = Histogram(
    "start_grpc_request_seconds",
    "gRPC call latency",
    ["method"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RPC_IN_FLIGHT = Gauge("start_grpc_in_flight", "gRPC calls being handled", ["method"])


def grpc_options(settings: ServiceSettings) -> list[tuple[str, Any]]:
    size = settings.max_message_mb * 1024 * 1024
    return [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.so_reuseport", 0),
        # The clients' keepalive pings must never count as abuse (GOAWAY too_many_pings).
        *server_keepalive_options(),
    ]


class _ErrorsAndMetrics(grpc.aio.ServerInterceptor):
    """Maps ServiceError to its status, logs unexpected failures, records metrics."""

    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
        if isinstance(exc, ServiceError):
            RPC_TOTAL.labels(method, exc.code.name).inc()
            await context.abort(exc.code, exc.message)
        RPC_TOTAL.labels(method, "INTERNAL").inc()
        log.exception("rpc failed", method=method)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    def _wrap_unary(self, method: str, behaviour: Callable) -> Callable:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            RPC_IN_FLIGHT.labels(method).inc()
            try:
                response = await behaviour(request, context)
                RPC_TOTAL.labels(method, "OK").inc()
                return response
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                await self._fail(context, method, exc)
            finally:
                RPC_IN_FLIGHT.labels(method).dec()
                RPC_SECONDS.labels(method).observe(time.perf_counter() - started)

        return call

    def _wrap_stream(self, method: str, behaviour: Callable) -> Callable:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            RPC_IN_FLIGHT.labels(method).inc()
            try:
                async for item in behaviour(request, context):
                    yield item
                RPC_TOTAL.labels(method, "OK").inc()
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:  # noqa: BLE001
                await self._fail(context, method, exc)
            finally:
                RPC_IN_FLIGHT.labels(method).dec()
                RPC_SECONDS.labels(method).observe(time.perf_counter() - started)

        return call


def _health_only_server(
    name: str, settings: ServiceSettings, health_servicer: health.aio.HealthServicer
) -> grpc.aio.Server:
    """A plaintext server on `health_port` with the health service alone (the same servicer,
    so the same statuses): kubelet's grpc probe cannot do TLS, and this port serves nothing
    a caller could use (services/common/auth.py)."""
    probe_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probe_server)
    if probe_server.add_insecure_port(f"{settings.host}:{settings.health_port}") == 0:
        raise SystemExit(f"{name}: cannot bind the health port {settings.host}:{settings.health_port} (port in use?)")
    return probe_server


@dataclass
class ServerHandle:
    """What a service's start hook gets: the server, its bound port, and health control."""

    server: grpc.aio.Server
    port: int
    service_names: list[str]
    health: health.aio.HealthServicer
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in [*self.service_names, ""]:
            await self.health.set(name, status)


Register = Callable[[grpc.aio.Server], Iterable[str]]
Hook = Callable[[ServerHandle], Awaitable[None]]


async def serve(
    name: str,
    settings: ServiceSettings,
    register: Register,
    on_start: Hook | None = None,
    on_stop: Hook | None = None,
    ready_on_start: bool = True,
) -> None:
    """Run a service until SIGTERM/SIGINT.

    `register` adds the servicers and returns their full service names. `on_start` runs
    after the port is bound (load an engine, warm a pool) and may flip health to
    SERVING itself when `ready_on_start` is False; `on_stop` runs after the drain.
    """
    configure_logging(settings.log_level, settings.log_format)
    try:
        auth = load_auth()
    except AuthConfigError as exc:
        raise SystemExit(f"{name}: {exc}") from None
    # The token check comes first: a refused call never reaches the service's interceptor.
    interceptors = [*auth.server_interceptors(), _ErrorsAndMetrics()]
    server = grpc.aio.server(interceptors=interceptors, options=grpc_options(settings))
    names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    address = f"{settings.host}:{settings.port}"
    port = server.add_secure_port(address, auth.server_credentials()) if auth.tls else server.add_insecure_port(address)
    if port == 0:
        raise SystemExit(f"{name}: cannot bind {settings.host}:{settings.port} (port in use?)")
    probe_server = _health_only_server(name, settings, health_servicer) if settings.health_port else None
    handle = ServerHandle(server=server, port=port, service_names=names, health=health_servicer)
    await handle.set_serving(False)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle.stopping.set)

    await server.start()
    if probe_server is not None:
        await probe_server.start()
    log.info(
        "listening", service=name, host=settings.host, port=port, metrics_port=settings.metrics_port,
        tls=auth.tls, token=bool(auth.token), health_port=settings.health_port,
    )
    try:
        if on_start is not None:
            await on_start(handle)
        if ready_on_start:
            await handle.set_serving(True)
        log.info("ready", service=name, port=port)
        await handle.stopping.wait()
    finally:
        log.info("draining", service=name, grace_s=settings.grace_s)
        await health_servicer.enter_graceful_shutdown()
        await server.stop(settings.grace_s)
        if probe_server is not None:
            await probe_server.stop(0)
        if on_stop is not None:
            await on_stop(handle)
        log.info("stopped", service=name)
