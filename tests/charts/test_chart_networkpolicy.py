"""The sandbox's NetworkPolicy means what it says: it selects the sandbox pods and no
others, lets nothing out, and lets in only the pods that run episodes (workers, and the
front door, whose Solve runs its tool steps in the orchestrator), code tests (scoring)
and this release's health tests, on the port the sandbox listens on."""

from __future__ import annotations

import pytest
from chart_objects import component, containers, named, pod_labels, selector_matches, worker_deployments, workloads


@pytest.fixture(scope="module")
def policy(default_objects):
    return named(default_objects, "NetworkPolicy", "start-sandbox")


def _selected(objects, selector) -> set[str]:
    return {w["metadata"]["name"] for w in workloads(objects) if selector_matches(selector, pod_labels(w))}


def test_policy_selects_exactly_the_sandbox_pods(default_objects, policy) -> None:
    assert _selected(default_objects, policy["spec"]["podSelector"]) == {"start-sandbox"}


def test_sandbox_may_send_nothing_not_even_dns(policy) -> None:
    assert "Egress" in policy["spec"]["policyTypes"]
    assert policy["spec"]["egress"] == []


def test_only_workers_the_front_door_scoring_and_health_tests_may_reach_the_sandbox(default_objects, policy) -> None:
    assert "Ingress" in policy["spec"]["policyTypes"]
    admitted: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            # A podSelector alone means this namespace only; no namespace or IP blocks.
            assert set(peer) == {"podSelector"}
            pods = [w for w in workloads(default_objects) if selector_matches(peer["podSelector"], pod_labels(w))]
            admitted |= {component(w) for w in pods}
    assert admitted == {"workers", "orchestrator", "scoring", "health-test"}
    # Generation, hints, Redis, training and the recipe runs have no business there.
    assert not admitted & {"generation", "hints", "redis", "train", "dataset-build", "dataset-export", "eval"}


def test_workers_of_every_queue_may_reach_the_sandbox(default_objects, policy) -> None:
    """The policy admits workers by the component label every queue's pods share."""
    peers = [peer["podSelector"] for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    for queue, deployment in worker_deployments(default_objects).items():
        assert any(selector_matches(peer, pod_labels(deployment)) for peer in peers), queue


def test_admitted_port_is_the_one_the_sandbox_serves_grpc_on(default_objects, policy) -> None:
    (container,) = containers(named(default_objects, "Deployment", "start-sandbox"))
    named_ports = {p["name"] for p in container["ports"]}
    for rule in policy["spec"]["ingress"]:
        assert [p["port"] for p in rule["ports"]] == ["grpc"]
        assert "grpc" in named_ports


def test_policy_follows_a_renamed_release(render) -> None:
    objects = render({"fullnameOverride": "acme"})
    policy = named(objects, "NetworkPolicy", "acme-sandbox")
    assert _selected(objects, policy["spec"]["podSelector"]) == {"acme-sandbox"}
