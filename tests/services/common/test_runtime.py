"""The shared server runtime, seen from outside, on a real service process (hints: the
lightest one): health, reflection, metrics, status codes for bad input, SIGTERM."""

from __future__ import annotations

import signal
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.channels import channel
from start.v1 import hints_pb2, hints_pb2_grpc
from startctl.processes import free_port, service_process, wait_ready


@pytest.fixture()
def hints_server(tmp_path):
    port, metrics_port = free_port(), free_port()
    proc = service_process("hints", port, {"START_HINTS_METRICS_PORT": str(metrics_port)}, log_dir=tmp_path)
    proc.start()
    addr = f"127.0.0.1:{port}"
    try:
        wait_ready(proc, addr, timeout_s=60)
        yield proc, addr, metrics_port
    finally:
        proc.stop()


def test_server_reports_serving_for_itself_and_its_service(hints_server):
    _, addr, _ = hints_server
    with channel(addr) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "start.v1.HintService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(hints_server):
    _, addr, _ = hints_server
    with channel(addr) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"start.v1.HintService", "grpc.health.v1.Health"} <= names


def test_bad_request_gets_invalid_argument_with_a_message_and_is_counted(hints_server):
    _, addr, metrics_port = hints_server
    with channel(addr) as ch:
        stub = hints_pb2_grpc.HintServiceStub(ch)
        with pytest.raises(grpc.RpcError) as failure:
            stub.ListHints(hints_pb2.ListHintsRequest(library="no-such-library"), timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no-such-library" in failure.value.details()
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert 'start_grpc_requests_total{code="INVALID_ARGUMENT",method="/start.v1.HintService/ListHints"} 1.0' in metrics


def test_sigterm_stops_the_server_cleanly(hints_server):
    proc, _, _ = hints_server
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=30) == 0
    assert "stopped" in proc.tail()
