"""Deadlines from the episode's budget and gRPC's retry of idempotent calls, against real
servers (hints, sandbox) on loopback.

A connection that breaks under a call is made by `CuttingProxy`, a TCP forwarder between
the orchestrator's channel and the real server: armed, it resets the connection on the
next request instead of passing it on, so the server never sees that attempt (a peer that
died or restarted before it read the call). Only the network is faked, never a service.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import grpc
import pytest
from pydantic import ValidationError

from services.common.episode import new_episode
from services.common.settings import PeerAddresses
from services.orchestrator.celery_app import WorkerSettings
from services.orchestrator.peers import BudgetSpent, Peers, is_transient
from services.orchestrator.steps import take_step
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2
from startctl.processes import free_port

# A request's HEADERS frame (method path, deadline...) is far longer than a keepalive PING
# (17 bytes) or a SETTINGS ack: a client chunk this long carries a call.
REQUEST_BYTES = 40


class CuttingProxy:
    """Forwards loopback TCP to `upstream`; `cut_next_request()` arms a one-time reset."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.armed = threading.Event()
        self.cuts = 0
        self.requests_passed = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_request(self) -> None:
        self.armed.set()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and len(data) >= REQUEST_BYTES and self.armed.is_set():
                    self.armed.clear()
                    self.cuts += 1
                    for sock in (src, dst):  # RST, as a killed peer's kernel would answer
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        sock.close()
                    return
                if from_client and len(data) >= REQUEST_BYTES:
                    self.requests_passed += 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                sock.close()


@pytest.fixture(scope="module")
def hints_addr(start_service) -> str:
    return start_service("hints")


@pytest.fixture(scope="module")
def sandbox_addr(start_service) -> str:
    return start_service("sandbox")


def peers_for(**addrs: str) -> Peers:
    return Peers(PeerAddresses(**addrs), timeout_s=60)


def an_episode() -> pb.Episode:
    problem = pb.Problem(id="p", question="What is 2+2?", reference="4", task_type=pb.TASK_TYPE_MATH)
    options = pb.EpisodeOptions(hints_enabled=True, max_total_tokens=100, max_tool_calls=6, max_tool_output_chars=100)
    return new_episode(problem, options)


def test_idempotent_call_is_retried_after_its_connection_breaks(hints_addr: str) -> None:
    proxy = CuttingProxy(hints_addr)
    peers = peers_for(hints_addr=proxy.addr)
    episode = an_episode()
    peers.next_action(episode, hints_pb2.STOP_REASON_START)  # connected
    proxy.cut_next_request()
    reply = peers.next_action(episode, hints_pb2.STOP_REASON_START)
    assert proxy.cuts == 1, "the first attempt was cut"
    assert reply.kind == pb.ACTION_KIND_GENERATE, "gRPC sent it again, and the hints service answered"
    proxy.close()


@pytest.mark.runsc
def test_execute_is_not_retried_by_the_channel(sandbox_addr: str) -> None:
    proxy = CuttingProxy(sandbox_addr)
    peers = peers_for(sandbox_addr=proxy.addr)
    assert peers.execute("print(1)").stdout == "1\n"
    passed = proxy.requests_passed
    proxy.cut_next_request()
    with pytest.raises(grpc.RpcError) as failed:
        peers.execute("print(2)")
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, "the step sees the failure and decides"
    assert proxy.cuts == 1 and proxy.requests_passed == passed, "no second attempt reached the sandbox"
    proxy.close()


def test_a_calls_deadline_is_what_is_left_of_the_episodes_budget() -> None:
    # A peer that accepts connections and never answers: only the deadline ends the call.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        peers = peers_for(hints_addr=f"127.0.0.1:{silent.getsockname()[1]}").until(time.time() + 1.0)
        assert 0 < peers.call_timeout() <= 1.0
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failed:
            peers.next_action(an_episode(), hints_pb2.STOP_REASON_START)
        waited = time.monotonic() - started
    finally:
        silent.close()
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert waited < 10, f"the call waited {waited:.1f} s: the per-call 60 s, not the budget's 1 s"


def test_a_budget_that_runs_out_between_two_calls_is_retried_as_transient() -> None:
    # The retry's take_step then ends the episode with the budget's message (below), as
    # after a call the budget's deadline cut (DEADLINE_EXCEEDED); not "step failed".
    with pytest.raises(BudgetSpent) as spent:
        peers_for().until(time.time() - 1).call_timeout()
    assert is_transient(spent.value)


def test_a_step_past_the_budget_ends_the_episode_without_calling() -> None:
    # Nothing listens on these peers: a call would fail UNAVAILABLE instead.
    nowhere = f"127.0.0.1:{free_port()}"
    peers = peers_for(generation_addr=nowhere, hints_addr=nowhere, sandbox_addr=nowhere, scoring_addr=nowhere)
    episode = an_episode()
    episode.created_unix = time.time() - 120
    take_step(episode, peers, budget_s=60)
    assert episode.status == pb.EPISODE_STATUS_FAILED
    assert "wall-clock budget of 60 s spent before step 0" in episode.error
    assert "START_WORKER_EPISODE_BUDGET_S" in episode.error
    assert episode.steps == 1 and episode.finished_unix > 0


def test_episode_budget_setting_is_checked() -> None:
    with pytest.raises(ValidationError, match="episode_budget_s"):
        WorkerSettings(episode_budget_s=0)
    assert WorkerSettings().episode_budget_s == 3600
