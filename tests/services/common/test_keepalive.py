"""Keepalive agreed between client channels and servers (services/common/channels.py), on
a real service process (hints, the lightest) and this process's channels to it.

Both ends get a 1 s ping interval through the one shared setting, so that seconds of
idling hold as many pings as minutes would at the default 30 s. With the clients' pings
uncapped and the servers' old policy (gRPC's defaults), the server answered the third
ping with GOAWAY ENHANCE_YOUR_CALM "too_many_pings"; with the old client settings the
client stopped pinging after two, and a server that froze after that went unnoticed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import KEEPALIVE_TIME_ENV, channel, client_options, keepalive_time_ms
from startctl.processes import LocalProcess, free_port, service_process, wait_ready

PING_MS = 1000
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def pinged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalProcess, str]]:
    """A hints server, and channels made in this process, both with 1 s keepalive pings."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(KEEPALIVE_TIME_ENV, str(PING_MS))
        port = free_port()
        proc = service_process("hints", port, log_dir=tmp_path_factory.mktemp("hints")).start()
        addr = f"127.0.0.1:{port}"
        try:
            wait_ready(proc, addr, timeout_s=60)
            yield proc, addr
        finally:
            proc.stop()


class StateLog:
    """A channel's connectivity states as they change (a GOAWAY or a dropped connection
    moves a READY channel to IDLE at once)."""

    def __init__(self, ch: grpc.Channel) -> None:
        self.states: list[grpc.ChannelConnectivity] = []
        self._changed = threading.Condition()
        ch.subscribe(self._record, try_to_connect=True)

    def _record(self, state: grpc.ChannelConnectivity) -> None:
        with self._changed:
            self.states.append(state)
            self._changed.notify_all()

    def wait_for(self, accept: callable, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: accept(list(self.states)), timeout=timeout_s)

    def since(self, index: int) -> list[str]:
        with self._changed:
            return [state.name for state in self.states[index:]]


def ready_channel(addr: str) -> tuple[grpc.Channel, health_pb2_grpc.HealthStub, StateLog, int]:
    """A channel that has made one call and is READY; the index of its READY state."""
    ch = channel(addr)
    log = StateLog(ch)
    stub = health_pb2_grpc.HealthStub(ch)
    assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
    assert log.wait_for(lambda states: states and states[-1] == grpc.ChannelConnectivity.READY, 10)
    return ch, stub, log, len(log.states)


def test_an_idle_channel_that_pings_is_never_sent_goaway_and_keeps_its_connection(pinged_server):
    _, addr = pinged_server
    assert dict(client_options())["grpc.keepalive_time_ms"] == PING_MS == keepalive_time_ms()
    ch, stub, log, ready = ready_channel(addr)
    with ch:
        time.sleep(7)  # no call: about seven pings, and nothing else, cross the connection
        assert log.since(ready) == [], "the idle channel lost its connection (GOAWAY too_many_pings?)"
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
        assert log.since(ready) == [], "the call after the idle time needed a new connection"


def test_an_idle_channel_keeps_pinging_and_drops_a_server_that_froze(pinged_server):
    proc, addr = pinged_server
    ch, stub, log, ready = ready_channel(addr)
    with ch:
        time.sleep(4)  # past the two pings gRPC sends by default before it stops pinging
        assert log.since(ready) == []
        os.kill(proc.proc.pid, signal.SIGSTOP)  # the connection stays up; no ping is answered
        try:
            left = log.wait_for(lambda states: len(states) > ready, timeout_s=8)
        finally:
            os.kill(proc.proc.pid, signal.SIGCONT)
        assert left, "a frozen server went unnoticed: the idle channel no longer pings"
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING  # it reconnects


def test_a_bad_keepalive_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv(KEEPALIVE_TIME_ENV, "soon")
    with pytest.raises(ValueError, match=KEEPALIVE_TIME_ENV):
        keepalive_time_ms()
