"""Authentication in the chart (auth.*): every START pod presents the release's certificate
and token, servers are probed on their plaintext health port, and the certificate the chart
generates really works with the platform's own mTLS: a real hints server started with it
answers a real client that presents it."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from chart_objects import (
    CHART,
    NAMESPACE,
    RELEASE,
    containers,
    env_of,
    load_values,
    named,
    of_kind,
    pod_spec,
    workloads,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.common.channels import channel
from start.v1 import hints_pb2, hints_pb2_grpc
from startctl.processes import free_port, service_process, wait_ready

SERVICES = {"generation": 50051, "hints": 50052, "sandbox": 50053, "scoring": 50054, "orchestrator": 50050}
AUTH_ENV = ("START_TLS_CERT_FILE", "START_TLS_KEY_FILE", "START_TLS_CA_FILE", "START_TLS_SERVER_NAME")
HEALTH_PORT = 8086
KUBE_VERSION = "1.30.0"
TLS_SECRETS = (f"{RELEASE}-tls", f"{RELEASE}-auth-token")


def start_containers(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) of every START process: services, workers, recipe runs, helm tests.

    Not Redis (no gRPC) and not training (it calls no service)."""
    found = []
    for obj in workloads(objects):
        name = obj["metadata"]["name"]
        if name.endswith(("redis", "train-sft")):
            continue
        found.extend((obj, container) for container in containers(obj))
    return found


def mounted_file(obj: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret, key) behind a file path in a container, read off its mounts and volumes."""
    volumes = {volume["name"]: volume for volume in pod_spec(obj).get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            assert mount.get("readOnly") is True, f"{obj['metadata']['name']}: {mount['mountPath']} is not read-only"
            secret = volumes[mount["name"]]["secret"]
            item = next(i for i in secret["items"] if i["path"] == path[len(prefix) :])
            return secret["secretName"], item["key"]
    raise AssertionError(f"{obj['metadata']['name']}/{container['name']}: nothing mounted at {path}")


def test_every_start_process_mounts_the_certificate_and_token_it_is_told_to_read(default_objects) -> None:
    seen = set()
    secrets = {obj["metadata"]["name"]: obj for obj in of_kind(default_objects, "Secret")}
    for obj, container in start_containers(default_objects):
        env = env_of(container)
        for variable in ("START_TLS_CERT_FILE", "START_TLS_KEY_FILE", "START_TLS_CA_FILE", "START_AUTH_TOKEN_FILE"):
            secret, key = mounted_file(obj, container, env[variable])
            assert key in secrets[secret]["data"], f"{secret} has no {key}"
        assert env["START_TLS_SERVER_NAME"] == RELEASE
        assert "START_AUTH_TOKEN" not in env  # never the token itself in a pod spec
        seen.add(obj["metadata"]["labels"]["app.kubernetes.io/component"])
    assert {*SERVICES, "workers", "eval", "health-test"} <= seen


def test_every_grpc_service_is_probed_on_its_plaintext_health_port(default_objects) -> None:
    for name, port in SERVICES.items():
        deployment = named(default_objects, "Deployment", f"{RELEASE}-{name}")
        (container,) = containers(deployment)
        env = env_of(container)
        assert env[f"START_{name.upper()}_HEALTH_PORT"] == str(HEALTH_PORT)
        assert env[f"START_{name.upper()}_PORT"] == str(port)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == HEALTH_PORT
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            # kubelet's grpc probe cannot do TLS: the mTLS port would refuse it.
            assert container[probe]["grpc"]["port"] == HEALTH_PORT, f"{name} {probe}"


def test_auth_off_leaves_plaintext_probes_on_the_grpc_port_and_no_secrets(render) -> None:
    objects = render({"auth": {"enabled": False}})
    assert not [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] in TLS_SECRETS]
    for obj, container in start_containers(objects):
        assert not set(AUTH_ENV) & set(env_of(container)), obj["metadata"]["name"]
    for name, port in SERVICES.items():
        (container,) = containers(named(objects, "Deployment", f"{RELEASE}-{name}"))
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert "health" not in {p["name"] for p in container["ports"]}


def test_existing_secrets_are_mounted_and_none_is_made(render) -> None:
    objects = render({"auth": {"tls": {"existingSecret": "my-tls"}, "token": {"existingSecret": "my-tok", "key": "t"}}})
    assert not [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] in TLS_SECRETS]
    for obj, container in start_containers(objects):
        env = env_of(container)
        assert mounted_file(obj, container, env["START_TLS_KEY_FILE"]) == ("my-tls", "tls.key")
        assert mounted_file(obj, container, env["START_AUTH_TOKEN_FILE"]) == ("my-tok", "t")


def test_cert_manager_issues_the_certificate_into_the_mounted_secret(render) -> None:
    issuer = {"name": "ca", "kind": "ClusterIssuer"}
    objects = render({"auth": {"tls": {"certManager": {"enabled": True, "issuerRef": issuer}}}})
    assert not [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == f"{RELEASE}-tls"]
    (certificate,) = of_kind(objects, "Certificate")
    spec = certificate["spec"]
    assert spec["secretName"] == f"{RELEASE}-tls"
    assert spec["issuerRef"] == {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert {"server auth", "client auth"} <= set(spec["usages"])
    assert {RELEASE, f"{RELEASE}-hints", f"{RELEASE}-hints.{NAMESPACE}.svc"} <= set(spec["dnsNames"])


def test_cert_manager_without_an_issuer_fails_naming_the_value(chart) -> None:
    with pytest.raises(Exception, match="auth.tls.certManager.issuerRef.name"):
        chart.render({"auth": {"tls": {"certManager": {"enabled": True}}}}, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    "values",
    [
        {"auth": {"tls": {"certManager": {"issuerRef": {"kind": "Secret"}}}}},
        {"auth": {"tokn": {}}},
        {"auth": {"healthPort": 0}},
    ],
    ids=["bad-issuer-kind", "unknown-key", "port-0"],
)
def test_schema_rejects_bad_auth_values(chart, values: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="auth"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    "values",
    [{"auth": {"enabled": False}}, {"auth": {"tls": {"certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}}}],
    ids=["auth-off", "cert-manager"],
)
def test_helm_lint_is_clean_with_auth_variants(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, {**load_values("default"), **values}, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], problems


def secret_files(objects: list[dict[str, Any]], directory: Path) -> dict[str, Path]:
    files = {}
    for secret in (f"{RELEASE}-tls", f"{RELEASE}-auth-token"):
        for key, value in named(objects, "Secret", secret)["data"].items():
            files[key] = directory / key
            files[key].write_bytes(base64.b64decode(value))
    return files


def test_generated_certificate_is_signed_by_its_ca_for_every_name_and_both_usages(default_objects, tmp_path) -> None:
    files = secret_files(default_objects, tmp_path)
    ca = x509.load_pem_x509_certificate(files["ca.crt"].read_bytes())
    cert = x509.load_pem_x509_certificate(files["tls.crt"].read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # Raises InvalidSignature unless the CA signed it.
    ca.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
    )
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    assert {RELEASE, "localhost"} | {f"{RELEASE}-{s}.{NAMESPACE}.svc.cluster.local" for s in SERVICES} <= names
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= usages
    assert cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=3000)


def test_generated_certificate_and_token_authenticate_a_real_server_and_client(
    default_objects, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's own material, used as the pods use it: the server and the client both read
    the env the chart sets, and the client dials an IP checked against START_TLS_SERVER_NAME."""
    secret_files(default_objects, tmp_path)
    (hints,) = containers(named(default_objects, "Deployment", f"{RELEASE}-hints"))
    chart_env = env_of(hints)
    mounted = {"/etc/start/tls/": tmp_path, "/etc/start/auth/": tmp_path}
    env = {}
    for variable in (*AUTH_ENV, "START_AUTH_TOKEN_FILE"):
        value = chart_env[variable]
        for prefix, local in mounted.items():
            value = value.replace(prefix, f"{local}/")
        env[variable] = value
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    port = free_port()
    proc = service_process("hints", port, env, log_dir=tmp_path).start()
    try:
        wait_ready(proc, f"127.0.0.1:{port}", timeout_s=60)
        with channel(f"127.0.0.1:{port}") as ch:
            assert hints_pb2_grpc.HintServiceStub(ch).ListHints(hints_pb2.ListHintsRequest(), timeout=10).hints
    finally:
        proc.stop()
