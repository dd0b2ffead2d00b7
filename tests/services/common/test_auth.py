"""Authenticated services (services/common/auth.py), against real servers on loopback.

A real hints server runs with mutual TLS and a bearer token, from certificates made here
with `cryptography`; callers are real gRPC channels, the platform's own (channels.py,
which reads START_TLS_* and START_AUTH_TOKEN from the environment as every process does)
or ones built by hand with the wrong credentials. The end-to-end test puts the real
orchestrator in front of it: its calls to hints, and `startctl`'s to it, must authenticate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.auth import AuthConfigError, load_auth
from services.common.channels import channel
from services.common.settings import AuthSettings
from start.v1 import common_pb2 as pb
from start.v1 import hints_pb2, hints_pb2_grpc, orchestrator_pb2_grpc
from start.v1 import orchestrator_pb2 as opb
from startctl.processes import LocalProcess, free_port, service_process, wait_ready
from tests.services.common.certs import CertificateAuthority, Identity

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Identity]:
    directory = tmp_path_factory.mktemp("pki")
    ours, theirs = CertificateAuthority(directory, "ours"), CertificateAuthority(directory, "theirs")
    return {"service": ours.issue("service"), "caller": ours.issue("caller"), "stranger": theirs.issue("stranger")}


@pytest.fixture(scope="module")
def client_env(pki: dict[str, Identity]) -> Iterator[dict[str, str]]:
    """This test process as a rightful caller: its channels (channels.py) present the caller's certificate and token."""
    env = {**pki["caller"].env(), "START_AUTH_TOKEN": TOKEN}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="module")
def hints(pki: dict[str, Identity], client_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """A real hints server with mTLS, a token file and a plaintext health port."""
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text(TOKEN + "\n")  # as `kubectl create secret --from-file` keeps a trailing newline
    port, health_port, metrics_port = free_port(), free_port(), free_port()
    env = {
        **pki["service"].env(),
        "START_AUTH_TOKEN_FILE": str(token_file),
        "START_AUTH_TOKEN": "",
        "START_HINTS_HEALTH_PORT": str(health_port),
        "START_HINTS_METRICS_PORT": str(metrics_port),
    }
    proc = service_process("hints", port, env, log_dir=tmp_path_factory.mktemp("hints-logs")).start()
    addr = f"127.0.0.1:{port}"
    try:
        wait_ready(proc, addr, timeout_s=60)
        yield {"addr": addr, "health": f"127.0.0.1:{health_port}", "metrics": metrics_port, "env": env}
    finally:
        proc.stop()


def list_hints(ch: grpc.Channel) -> hints_pb2.ListHintsResponse:
    return hints_pb2_grpc.HintServiceStub(ch).ListHints(hints_pb2.ListHintsRequest(), timeout=10)


def refusal(ch: grpc.Channel) -> grpc.RpcError:
    """The error a ListHints call on ch fails with."""
    with pytest.raises(grpc.RpcError) as failure:
        list_hints(ch)
    return failure.value


def tls_channel(addr: str, identity: Identity | None, ca: Path, token: str = "") -> grpc.Channel:
    """A caller built by hand: this CA to verify the server, maybe a certificate, maybe a token."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=identity.key.read_bytes() if identity else None,
        certificate_chain=identity.cert.read_bytes() if identity else None,
    )
    if token:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(addr, credentials)


def test_mtls_call_with_the_token_succeeds(hints) -> None:
    with channel(hints["addr"]) as ch:
        assert list_hints(ch).hints


def test_caller_without_a_client_certificate_cannot_complete_the_handshake(hints, pki) -> None:
    # The server ends the handshake; the caller sees UNAVAILABLE "Socket closed" (TLS 1.3 reports
    # a refused client certificate after the client's side of the handshake is done).
    with tls_channel(hints["addr"], None, pki["caller"].ca, TOKEN) as ch:
        error = refusal(ch)
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_certificate_from_another_ca_is_refused(hints, pki) -> None:
    # The stranger trusts our CA (it can verify the server) but its own cert is signed by another.
    with tls_channel(hints["addr"], pki["stranger"], pki["caller"].ca, TOKEN) as ch:
        error = refusal(ch)
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_caller_is_refused(hints) -> None:
    with grpc.insecure_channel(hints["addr"]) as ch:
        error = refusal(ch)
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_server_with_a_certificate_from_another_ca_is_not_trusted(pki, hints) -> None:
    # The caller verifies the server: one that presents another CA's certificate is refused.
    with tls_channel(hints["addr"], pki["caller"], pki["stranger"].ca, TOKEN) as ch:
        error = refusal(ch)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in error.details()


def test_missing_token_is_unauthenticated_and_says_what_to_send(hints, pki) -> None:
    with tls_channel(hints["addr"], pki["caller"], pki["caller"].ca) as ch:
        error = refusal(ch)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in error.details()
    assert "authorization: Bearer <token>" in error.details()
    assert "START_AUTH_TOKEN" in error.details()


def test_wrong_token_is_unauthenticated_and_counted(hints, pki) -> None:
    with tls_channel(hints["addr"], pki["caller"], pki["caller"].ca, TOKEN + "x") as ch:
        error = refusal(ch)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token not accepted" in error.details()
    assert "START_AUTH_TOKEN" in error.details()
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{hints['metrics']}/metrics", timeout=5).read().decode()
    assert 'start_grpc_unauthenticated_total{method="/start.v1.HintService/ListHints"}' in metrics


def test_reflection_needs_the_token_too(hints, pki) -> None:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with tls_channel(hints["addr"], pki["caller"], pki["caller"].ca) as ch, pytest.raises(grpc.RpcError) as failure:
        list(reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(iter([request]), timeout=10))
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_is_reachable_without_a_token_and_on_the_plaintext_probe_port(hints, pki) -> None:
    request = health_pb2.HealthCheckRequest(service="start.v1.HintService")
    serving = health_pb2.HealthCheckResponse.SERVING
    with tls_channel(hints["addr"], pki["caller"], pki["caller"].ca) as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(request, timeout=10).status == serving
    # kubelet's grpc probe: plaintext, no certificate, no token.
    with grpc.insecure_channel(hints["health"]) as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(request, timeout=10).status == serving
        # ...and that port serves health alone.
        assert refusal(ch).code() == grpc.StatusCode.UNIMPLEMENTED


PAIR = {"tls_cert_file": "service.crt", "tls_key_file": "service.key"}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"tls_cert_file": "service.crt"}, "START_TLS_KEY_FILE"),
        (PAIR, "START_TLS_CA_FILE"),
        ({"tls_ca_file": "ca.crt"}, "START_TLS_CERT_FILE"),
        ({**PAIR, "tls_ca_file": "nowhere"}, "START_TLS_CA_FILE"),
        ({**PAIR, "tls_ca_file": "token"}, "START_TLS_CA_FILE"),
        ({"auth_token": TOKEN}, "START_AUTH_TOKEN"),
        ({"auth_token": TOKEN, "auth_token_file": "token"}, "START_AUTH_TOKEN_FILE"),
        ({"auth_token_file": "empty"}, "START_AUTH_TOKEN_FILE"),
        ({"tls_server_name": "hints"}, "START_TLS_SERVER_NAME"),
    ],
    ids=[
        "cert-no-key", "no-ca", "ca-only", "ca-unreadable", "ca-not-pem",
        "token-without-tls", "two-tokens", "empty-token-file", "server-name-without-tls",
    ],
)
def test_half_configuration_is_refused_naming_the_variable(
    tmp_path: Path, pki, settings: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("CERT_FILE", "KEY_FILE", "CA_FILE", "SERVER_NAME"):
        monkeypatch.delenv(f"START_TLS_{variable}", raising=False)
    monkeypatch.delenv("START_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("START_AUTH_TOKEN_FILE", raising=False)
    service = pki["service"]
    files = {"service.crt": service.cert, "service.key": service.key, "ca.crt": service.ca}
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "empty").write_text("\n")
    paths = {
        key: str(files.get(value, tmp_path / value)) if key.endswith("_file") else value
        for key, value in settings.items()
    }
    with pytest.raises(AuthConfigError, match=named):
        load_auth(AuthSettings(**paths))


def test_nothing_set_is_plaintext_without_a_token() -> None:
    auth = load_auth(AuthSettings(tls_cert_file="", tls_key_file="", tls_ca_file="", auth_token=""))
    assert not auth.tls and not auth.token


def test_server_with_a_half_configuration_stops_at_start_naming_the_variable(pki, tmp_path: Path) -> None:
    env = {"START_TLS_CERT_FILE": str(pki["service"].cert), "START_TLS_KEY_FILE": "", "START_TLS_CA_FILE": ""}
    proc = service_process("hints", free_port(), env, log_dir=tmp_path).start()
    try:
        assert proc.proc.wait(timeout=60) != 0
    finally:
        proc.stop()
    assert "START_TLS_KEY_FILE" in proc.tail()


# -- End to end: the orchestrator calls hints, startctl calls the orchestrator, all authenticated.


@pytest.fixture(scope="module")
def orchestrator(hints, pki, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    redis_db = redis_url.rsplit("/", 1)[0] + "/13"
    redis.Redis.from_url(redis_db).flushdb()
    env = {
        **pki["service"].env(),
        "START_AUTH_TOKEN": TOKEN,
        "START_REDIS_URL": redis_db,
        "START_HINTS_ADDR": hints["addr"],
        "START_GENERATION_ADDR": f"127.0.0.1:{free_port()}",
        "START_ORCHESTRATOR_RESULTS_URL": str(tmp_path_factory.mktemp("results")),
    }
    proc: LocalProcess = service_process("orchestrator", free_port(), env, log_dir=tmp_path_factory.mktemp("orch-logs"))
    addr = f"127.0.0.1:{proc.env['START_ORCHESTRATOR_PORT']}"
    proc.start()
    try:
        wait_ready(proc, addr, timeout_s=90)
        yield addr
    finally:
        proc.stop()


def test_orchestrator_reaches_its_peer_and_startctl_reaches_it_authenticated(orchestrator: str, client_env) -> None:
    with channel(orchestrator) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        problem = pb.Problem(question="What is 17 * 23?", reference="391", task_type=pb.TASK_TYPE_MATH)
        # The front door checks a hint library with the hints service: over mTLS with its token, hints
        # answers INVALID_ARGUMENT for an unknown one (a failed handshake would be UNAVAILABLE).
        with pytest.raises(grpc.RpcError) as failure:
            stub.SubmitEpisode(
                opb.SubmitEpisodeRequest(problem=problem, options=pb.EpisodeOptions(hint_library="no-such-library")),
                timeout=30,
            )
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.value.details()
        assert "options.hint_library" in failure.value.details()
        episode_id = stub.SubmitEpisode(
            opb.SubmitEpisodeRequest(problem=problem, options=pb.EpisodeOptions(hint_library="math")), timeout=30
        ).episode_id
        assert episode_id

    command = [sys.executable, "-m", "startctl", "job", "list", "--json", "--addr", orchestrator]
    allowed = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **client_env})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    refused = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, **client_env, "START_AUTH_TOKEN": ""}
    )
    assert refused.returncode != 0
    assert "missing bearer token" in refused.stdout + refused.stderr
