"""Who may reach what, and with which credential: every pod the chart makes is behind exactly
one default-deny NetworkPolicy admitting only the calls the architecture draws, and the
in-chart Redis requires a password (a Secret the chart makes, or one the operator names)
that every client, probe and KEDA read from that Secret, never from the pod spec.

The edges, as the services make them (services/orchestrator/peers.py, solve.py,
services/scoring/code.py):

    clients, eval runs, helm test -> orchestrator (front door)
    workers, orchestrator (Solve) -> generation, hints, sandbox, scoring, redis
    scoring                       -> sandbox
    helm test                     -> every gRPC service
    training pods                 -> one another
    Prometheus                    -> every metrics port but the sandbox's
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from chart_objects import (
    RELEASE,
    component,
    containers,
    env_of,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    selector_matches,
    worker_deployments,
    workloads,
)

PORTS = {"generation": 50051, "hints": 50052, "sandbox": 50053, "scoring": 50054, "orchestrator": 50050}
REDIS_PORT = 6379
SECRET = f"{RELEASE}-redis"
RUNNER_CALLS = {("generation", 50051), ("hints", 50052), ("sandbox", 50053), ("scoring", 50054)}

# The chart's defaults for the peers that are not this release's pods (values.yaml networkPolicy).
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
ANY_SOURCE = [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
KUBE_SYSTEM = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
KEDA = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
OBJECT_STORE = {"ipBlock": {"cidr": "0.0.0.0/0"}}


def _key(peer: dict) -> str:
    return json.dumps(peer, sort_keys=True)


METRICS = {_key(MONITORING)}

# Port -> who may connect on it, per policy, at the chart's defaults: this release's components
# by name, other peers as their JSON. Whatever is not listed is dropped.
EXPECTED_INGRESS: dict[str, dict[str, set[str]]] = {
    "orchestrator": {"grpc": {"eval", "health-test", *map(_key, ANY_SOURCE)}, "metrics": METRICS},
    "generation": {"grpc": {"workers", "orchestrator", "health-test"}, "metrics": METRICS},
    "hints": {"grpc": {"workers", "orchestrator", "health-test"}, "metrics": METRICS},
    "scoring": {"grpc": {"workers", "orchestrator", "health-test"}, "metrics": METRICS},
    # Model-written code runs here: its callers only, not even Prometheus.
    "sandbox": {"grpc": {"workers", "orchestrator", "scoring", "health-test"}},
    "workers": {"metrics": METRICS},
    "redis": {"redis": {"orchestrator", "workers"}},
    # Torchrun's rendezvous and NCCL pick their ports: every port, from the run's own pods.
    "train": {"*": {"train"}},
    "dataset-build": {},
    "dataset-export": {},
    "eval": {},
    "health-test": {},
}

# (callee, TCP port) each component may open, besides DNS; "*" for every port.
EXPECTED_EGRESS: dict[str, set[tuple[str, int | str]]] = {
    "orchestrator": {*RUNNER_CALLS, ("redis", REDIS_PORT)},
    "workers": {*RUNNER_CALLS, ("redis", REDIS_PORT)},
    "scoring": {("sandbox", 50053)},
    "generation": set(),
    "hints": set(),
    "sandbox": set(),
    "redis": set(),
    "train": {("train", "*")},
    "dataset-build": set(),
    "dataset-export": set(),
    "eval": {("orchestrator", 50050)},
    "health-test": {(name, port) for name, port in PORTS.items()},
}
# Those that may not even resolve a name: nothing to call.
NO_DNS = {"sandbox", "redis"}

# Values an operator installs with, each switching on a part that changes the policies.
VALUE_SETS = {
    "default": {},
    "gpu": {"generation": {"gpu": {"enabled": True}}},
    "keda": {"workers": {"keda": {"enabled": True}}},
    "object-store": {"results": {"url": "s3://acme-start/results", "existingSecret": "results-s3"}},
    "external-redis": {"redis": {"enabled": False, "external": {"existingSecret": "redis-conn"}}},
    "no-training-no-recipes": {"training": {"enabled": False}, "recipeJobs": {"enabled": False}},
    "renamed": {"fullnameOverride": "acme"},
}


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def objects(request, render):
    return render(VALUE_SETS[request.param])


def _policies(objects) -> list[dict]:
    return of_kind(objects, "NetworkPolicy")


def _policy(objects, name: str) -> dict:
    return next(p for p in _policies(objects) if component(p) == name)


def _components(objects, selector: dict) -> set[str]:
    """This release's components whose pods a selector picks (it must pick some)."""
    picked = {component(w) for w in workloads(objects) if selector_matches(selector, pod_labels(w))}
    assert picked, f"{selector} selects no pod of the release"
    return picked


def _peer_names(objects, peer: dict) -> set[str]:
    """A peer as components of this release (a podSelector alone) or as its JSON."""
    if set(peer) == {"podSelector"}:
        return _components(objects, peer["podSelector"])
    return {_key(peer)}


def _ingress(objects, policy: dict) -> dict[str, set[str]]:
    admitted: dict[str, set[str]] = {}
    for rule in policy["spec"]["ingress"]:
        # A rule without peers admits every source: only allowed where the architecture says so.
        assert rule.get("from"), f"{policy['metadata']['name']}: a rule open to any source"
        ports = [p["port"] for p in rule.get("ports", [])] or ["*"]
        for port in ports:
            for peer in rule["from"]:
                admitted.setdefault(port, set()).update(_peer_names(objects, peer))
    return admitted


def _egress(objects, policy: dict) -> tuple[set[tuple[str, int | str]], list[dict]]:
    """Calls to this release's pods as (component, port), and the other rules as they are."""
    calls, other = set(), []
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), f"{policy['metadata']['name']}: a rule open to any destination"
        ports = [p["port"] for p in rule.get("ports", [])] or ["*"]
        if all(set(peer) == {"podSelector"} for peer in rule["to"]):
            for peer in rule["to"]:
                calls |= {(name, port) for name in _components(objects, peer["podSelector"]) for port in ports}
        else:
            other.append(rule)
    return calls, other


# -- (a) every pod behind exactly one policy ---------------------------------------------


def test_every_pod_the_chart_makes_is_selected_by_exactly_one_default_deny_policy(objects) -> None:
    policies = _policies(objects)
    for workload in workloads(objects):
        selecting = [p for p in policies if selector_matches(p["spec"]["podSelector"], pod_labels(workload))]
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        assert len(selecting) == 1, f"{name} is selected by {[p['metadata']['name'] for p in selecting]}"
        # Both listed: whatever no rule admits is dropped, in and out.
        assert selecting[0]["spec"]["policyTypes"] == ["Ingress", "Egress"], name
    # And no policy that selects nothing (a label typo would leave its pods open).
    for policy in policies:
        _components(objects, policy["spec"]["podSelector"])


def test_each_component_has_its_own_policy_selecting_only_its_pods(objects) -> None:
    for policy in _policies(objects):
        assert _components(objects, policy["spec"]["podSelector"]) == {component(policy)}


def test_the_workers_of_every_queue_share_one_policy(default_objects) -> None:
    policy = _policy(default_objects, "workers")
    for deployment in worker_deployments(default_objects).values():
        assert selector_matches(policy["spec"]["podSelector"], pod_labels(deployment))


def test_policies_are_valid_networking_v1_objects(objects) -> None:
    for policy in _policies(objects):
        try:
            kubernetes_validate.validate(policy, "1.30.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{policy['metadata']['name']}: {exc.message} at {list(exc.path)}")


# -- (b) only the callers the architecture has --------------------------------------------


@pytest.mark.parametrize("name", EXPECTED_INGRESS)
def test_each_component_admits_exactly_its_callers(default_objects, name: str) -> None:
    assert _ingress(default_objects, _policy(default_objects, name)) == EXPECTED_INGRESS[name]


@pytest.mark.parametrize("name", EXPECTED_EGRESS)
def test_each_component_reaches_only_what_it_calls_and_dns(default_objects, name: str) -> None:
    calls, other = _egress(default_objects, _policy(default_objects, name))
    assert calls == EXPECTED_EGRESS[name]
    dns = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert other == ([] if name in NO_DNS else [{"to": [KUBE_SYSTEM], "ports": dns}])


def test_admitted_ports_are_ports_the_pods_declare(default_objects) -> None:
    """Named ports in an ingress rule mean nothing on a pod that does not declare them."""
    for policy in _policies(default_objects):
        pods = [w for w in workloads(default_objects) if selector_matches(policy["spec"]["podSelector"], pod_labels(w))]
        for rule in policy["spec"]["ingress"]:
            for port in rule.get("ports", []):
                for pod in pods:
                    declared = {p["name"] for c in containers(pod) for p in c.get("ports", [])}
                    assert port["port"] in declared, f"{policy['metadata']['name']}: {pod['metadata']['name']}"


def test_egress_ports_are_the_ports_the_callees_listen_on(default_objects) -> None:
    for policy in _policies(default_objects):
        calls, _ = _egress(default_objects, policy)
        for callee, port in calls:
            if port == "*":
                continue
            pods = [w for w in workloads(default_objects) if component(w) == callee]
            for pod in pods:
                assert port in {p["containerPort"] for c in containers(pod) for p in c.get("ports", [])}, callee


def test_the_front_door_and_recipe_runs_reach_the_object_store_only_when_results_go_there(render) -> None:
    def outside(objects, name):
        return _egress(objects, _policy(objects, name))[1][1:]  # after DNS

    store = [{"to": [OBJECT_STORE], "ports": [{"port": 443, "protocol": "TCP"}]}]
    with_store = render(VALUE_SETS["object-store"])
    for name in ("orchestrator", "dataset-build", "dataset-export", "eval"):
        assert outside(with_store, name) == store, name
        assert outside(render(), name) == [], name
    # The workers never write results.
    assert outside(with_store, "workers") == []
    narrowed = render(
        {
            **VALUE_SETS["object-store"],
            "networkPolicy": {"objectStore": {"to": [{"ipBlock": {"cidr": "52.216.0.0/15"}}], "ports": [443, 80]}},
        }
    )
    (rule,) = outside(narrowed, "orchestrator")
    assert rule["to"] == [{"ipBlock": {"cidr": "52.216.0.0/15"}}]
    assert [p["port"] for p in rule["ports"]] == [443, 80]
    closed = render({**VALUE_SETS["object-store"], "networkPolicy": {"objectStore": {"to": []}}})
    assert outside(closed, "orchestrator") == []


def test_with_an_external_redis_its_clients_reach_it_outside_the_release(render) -> None:
    objects = render(VALUE_SETS["external-redis"])
    assert "redis" not in {component(p) for p in _policies(objects)}
    for name in ("orchestrator", "workers"):
        calls, other = _egress(objects, _policy(objects, name))
        assert calls == RUNNER_CALLS
        assert other[1:] == [
            {
                "to": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}],
                "ports": [{"port": 6379, "protocol": "TCP"}],
            }
        ]


def test_keda_is_let_into_redis_from_its_own_namespace_only_when_it_scales_the_workers(render) -> None:
    objects = render({"workers": {"keda": {"enabled": True}}, "networkPolicy": {"keda": {"namespace": "autoscaling"}}})
    admitted = _ingress(objects, _policy(objects, "redis"))
    ns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "autoscaling"}}}
    assert admitted == {"redis": {"orchestrator", "workers", _key(ns)}}
    assert _key(KEDA) not in _ingress(render(), _policy(render(), "redis"))["redis"]


def test_the_front_door_can_be_narrowed_to_its_clients(render) -> None:
    clients = {"namespaceSelector": {"matchLabels": {"team": "math"}}, "podSelector": {}}
    objects = render({"networkPolicy": {"frontDoor": {"from": [clients]}}})
    assert _ingress(objects, _policy(objects, "orchestrator"))["grpc"] == {"eval", "health-test", _key(clients)}
    # [] leaves only this release's own callers.
    objects = render({"networkPolicy": {"frontDoor": {"from": []}}})
    assert _ingress(objects, _policy(objects, "orchestrator"))["grpc"] == {"eval", "health-test"}


def test_an_empty_peer_list_closes_what_it_would_open(render) -> None:
    """Kubernetes reads a rule without peers as "anyone": [] must drop the rule instead."""
    objects = render({"networkPolicy": {"metrics": {"from": []}, "dns": {"to": []}}})
    for policy in _policies(objects):
        assert "metrics" not in _ingress(objects, policy)
        assert _egress(objects, policy)[1] == [], policy["metadata"]["name"]


# -- (c) Redis requires a password ---------------------------------------------------------


def _secret_ref(value) -> dict:
    return value["secretKeyRef"]


def _password_refs(objects) -> list[tuple[str, dict]]:
    refs = []
    for workload in workloads(objects):
        for container in containers(workload):
            for item in container.get("env", []):
                if item["name"] in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
                    refs.append((f"{workload['metadata']['name']}/{container['name']}", _secret_ref(item["valueFrom"])))
    return refs


def test_the_chart_makes_a_random_redis_password_secret_by_default(default_objects) -> None:
    secret = named(default_objects, "Secret", SECRET)
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    # URL-safe: it goes into START_REDIS_URL as it is.
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    # Not kept on uninstall: nothing outlives the release that the password protects.
    assert "helm.sh/resource-policy" not in secret["metadata"].get("annotations", {})
    # Nowhere else in what the chart renders, above all not in a pod spec.
    others = [o for o in default_objects if o is not secret]
    assert password not in yaml.safe_dump_all(others)


def test_the_redis_password_survives_an_upgrade() -> None:
    """Upgrades read the password back from the Secret in the cluster (lookup), never roll it."""
    template = (Path(__file__).resolve().parents[2] / "charts/start/templates/secret-redis.yaml").read_text()
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace \$name', template)
    assert "randAlphaNum 32" in template


def test_redis_server_takes_its_password_from_the_secret_on_stdin_not_its_command_line(default_objects) -> None:
    (redis,) = containers(named(default_objects, "StatefulSet", f"{RELEASE}-redis"))
    env = env_of(redis)
    assert _secret_ref(env["REDIS_PASSWORD"]) == {"name": SECRET, "key": "redis-password"}
    assert redis["command"][:2] == ["sh", "-c"]
    assert "requirepass $REDIS_PASSWORD" in redis["command"][2]
    assert redis["args"][-1] == "-"  # redis-server reads a config file on stdin
    # No $(REDIS_PASSWORD): the kubelet would write the password into the command line.
    assert not any("REDIS_PASSWORD)" in part or part.strip("-") == "requirepass" for part in redis["args"])


def test_redis_probes_authenticate_with_the_same_secret(default_objects) -> None:
    (redis,) = containers(named(default_objects, "StatefulSet", f"{RELEASE}-redis"))
    assert _secret_ref(env_of(redis)["REDISCLI_AUTH"]) == {"name": SECRET, "key": "redis-password"}
    for probe in ("readinessProbe", "livenessProbe"):
        command = " ".join(redis[probe]["exec"]["command"])
        assert "redis-cli" in command and "ping" in command and "PONG" in command, probe
        assert " -a " not in command, probe  # no password on the command line


def test_every_redis_client_gets_the_password_from_the_same_secret(objects) -> None:
    in_chart = any(component(w) == "redis" for w in workloads(objects))
    clients = 0
    for workload in workloads(objects):
        for container in containers(workload):
            env = env_of(container)
            if "START_REDIS_URL" not in env:
                continue
            clients += 1
            name = workload["metadata"]["name"]
            if not in_chart:
                assert "REDIS_PASSWORD" not in env, name
                continue
            host = next(s["metadata"]["name"] for s in of_kind(objects, "Service") if component(s) == "redis")
            assert env["START_REDIS_URL"] == f"redis://:$(REDIS_PASSWORD)@{host}:6379/0", name
            assert _secret_ref(env["REDIS_PASSWORD"])["name"] == host, name  # the Secret is named like the Service
            names = [e["name"] for e in container["env"]]
            assert names.index("REDIS_PASSWORD") < names.index("START_REDIS_URL"), name
    assert clients >= 5  # the front door, three queues of workers, scoring


def test_an_existing_secret_replaces_the_charts_own_everywhere(render) -> None:
    objects = render({"redis": {"auth": {"existingSecret": "redis-auth", "passwordKey": "password"}}})
    # No Redis password Secret; the ones left are the gRPC certificate and token (test_chart_auth.py).
    assert [s["metadata"]["name"] for s in of_kind(objects, "Secret")] == ["start-auth-token", "start-tls"]
    refs = _password_refs(objects)
    assert len(refs) >= 7  # Redis twice, the front door, three queues of workers, scoring
    assert {json.dumps(ref, sort_keys=True) for _, ref in refs} == {'{"key": "password", "name": "redis-auth"}'}


def test_auth_disabled_renders_redis_without_a_password(render) -> None:
    objects = render({"redis": {"auth": {"enabled": False, "existingSecret": "ignored"}}})
    # No Redis password Secret; the ones left are the gRPC certificate and token (test_chart_auth.py).
    assert [s["metadata"]["name"] for s in of_kind(objects, "Secret")] == ["start-auth-token", "start-tls"]
    assert _password_refs(objects) == []
    (redis,) = containers(named(objects, "StatefulSet", f"{RELEASE}-redis"))
    assert redis["command"] == ["redis-server"] and "-" not in redis["args"]
    for workload in workloads(objects):
        for container in containers(workload):
            url = env_of(container).get("START_REDIS_URL")
            assert url in (None, f"redis://{RELEASE}-redis:6379/0"), workload["metadata"]["name"]
    # The probes work either way: redis-cli without REDISCLI_AUTH sends no AUTH.
    assert "redis-cli" in " ".join(redis["readinessProbe"]["exec"]["command"])


def test_keda_authenticates_to_redis_with_a_trigger_authentication_on_the_secret(render) -> None:
    objects = render({"workers": {"keda": {"enabled": True}}})
    (auth,) = of_kind(objects, "TriggerAuthentication")
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": SECRET, "key": "redis-password"}]
    scaled = of_kind(objects, "ScaledObject")
    assert len(scaled) == 3
    for obj in scaled:
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
        assert "passwordFromEnv" not in trigger["metadata"]  # KEDA reads no workload's env
    without = render({"workers": {"keda": {"enabled": True}}, "redis": {"auth": {"enabled": False}}})
    assert of_kind(without, "TriggerAuthentication") == []
    assert all("authenticationRef" not in o["spec"]["triggers"][0] for o in of_kind(without, "ScaledObject"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("redis-cli")), reason="no redis-server")
def test_the_rendered_redis_command_and_probes_work_against_a_real_redis(default_objects, tmp_path) -> None:
    """The StatefulSet's own command, args and probes, run with a local redis-server: the
    server requires the password, the probes pass with it and fail without, and the password
    is in no process's command line."""
    secret = named(default_objects, "Secret", SECRET)
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    (redis,) = containers(named(default_objects, "StatefulSet", f"{RELEASE}-redis"))
    port = _free_port()
    args = [str(tmp_path) if a == "/data" else a for a in redis["args"]]
    args = [*args[:-1], "--port", str(port), *args[-1:]]
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": password}
    server = subprocess.Popen([*redis["command"], *args], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:

        def probe(name: str, auth: str | None) -> int:
            command = [part.replace("-p 6379", f"-p {port}") for part in redis[name]["exec"]["command"]]
            probe_env = {"PATH": os.environ["PATH"], **({"REDISCLI_AUTH": auth} if auth else {})}
            return subprocess.run(command, env=probe_env, timeout=10).returncode

        deadline = time.monotonic() + 10
        while probe("readinessProbe", password) != 0:
            assert server.poll() is None and time.monotonic() < deadline, "redis did not become ready"
            time.sleep(0.1)
        assert probe("livenessProbe", password) == 0
        assert probe("readinessProbe", None) != 0  # NOAUTH
        assert probe("readinessProbe", "wrong") != 0
        assert probe("livenessProbe", None) != 0
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode(errors="replace")
        assert password not in cmdline
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- (d) the switch ------------------------------------------------------------------------


def test_network_policies_off_leaves_only_the_sandbox_policy(render) -> None:
    objects = render({"networkPolicy": {"enabled": False}, "workers": {"keda": {"enabled": True}}})
    (policy,) = _policies(objects)
    assert policy["metadata"]["name"] == f"{RELEASE}-sandbox"
    # Model-written code still reaches nothing.
    assert policy["spec"]["egress"] == [] and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


# -- (e) the schema --------------------------------------------------------------------------

BAD_VALUES = {
    "auth switch as a string": ({"redis": {"auth": {"enabled": "yes"}}}, "/redis/auth/enabled"),
    "password key not a secret key": ({"redis": {"auth": {"passwordKey": "pass/word"}}}, "/redis/auth/passwordKey"),
    "policy switch as a string": ({"networkPolicy": {"enabled": "no"}}, "/networkPolicy/enabled"),
    "typo in a front-door peer": (
        {"networkPolicy": {"frontDoor": {"from": [{"podSelectr": {}}]}}},
        "/networkPolicy/frontDoor/from/0",
    ),
    "metrics peers as a namespace name": (
        {"networkPolicy": {"metrics": {"from": "monitoring"}}},
        "/networkPolicy/metrics/from",
    ),
    "empty dns peer": ({"networkPolicy": {"dns": {"to": [{}]}}}, "/networkPolicy/dns/to/0"),
    "keda namespace not a name": (
        {"networkPolicy": {"keda": {"namespace": "KEDA_system"}}},
        "/networkPolicy/keda/namespace",
    ),
    "object store cidr without prefix": (
        {"networkPolicy": {"objectStore": {"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}}},
        "/networkPolicy/objectStore/to/0/ipBlock/cidr",
    ),
    "object store port zero": (
        {"networkPolicy": {"objectStore": {"ports": [0]}}},
        "/networkPolicy/objectStore/ports/0",
    ),
    "external redis port out of range": (
        {"networkPolicy": {"externalRedis": {"ports": [70000]}}},
        "/networkPolicy/externalRedis/ports/0",
    ),
    "ip block with a pod selector": (
        {"networkPolicy": {"externalRedis": {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}}},
        "/networkPolicy/externalRedis/to/0",
    ),
    "unknown key under networkPolicy": ({"networkPolicy": {"egress": []}}, "egress"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_schema_rejects_bad_network_and_redis_values_naming_the_key(chart: helm.Chart, case: str) -> None:
    values, where = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.render(values, name=RELEASE, namespace=RELEASE)
    assert where in str(caught.value)


def test_training_pods_reach_one_another_on_every_port_and_nothing_else(default_objects) -> None:
    policy = _policy(default_objects, "train")
    (ingress,) = policy["spec"]["ingress"]
    assert "ports" not in ingress
    cronjob = named(default_objects, "CronJob", f"{RELEASE}-train-sft")
    assert pod_spec(cronjob)["subdomain"]  # rank 0 by DNS: the reason training keeps DNS
    assert _ingress(default_objects, policy) == {"*": {"train"}}
