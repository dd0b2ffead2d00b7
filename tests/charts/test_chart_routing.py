"""The chart routes generation by episode: a headless Service lists every ready generation
pod, and the orchestrator and its workers discover the replicas through it with the routing
settings of generation.routing (services/orchestrator/routing.py)."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_objects import (
    chart_defaults,
    component,
    containers,
    env_of,
    named,
    of_kind,
    pod_labels,
    selector_matches,
    worker_deployments,
)

from services.common.settings import PeerAddresses
from services.orchestrator.routing import RoutingConfig

HEADLESS = "start-generation-headless"
ROUTED = ("start-orchestrator", "start-workers-generate", "start-workers-tool", "start-workers-score")


def _routing_env(objects, deployment: str) -> dict[str, str]:
    (container, *_) = containers(named(objects, "Deployment", deployment))
    return {k: v for k, v in env_of(container).items() if k.startswith("START_GENERATION_")}


def test_headless_service_lists_each_generation_pod_on_its_grpc_port(default_objects) -> None:
    headless = named(default_objects, "Service", HEADLESS)
    generation = named(default_objects, "Deployment", "start-generation")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False  # a loading engine is not in DNS
    assert selector_matches({"matchLabels": headless["spec"]["selector"]}, pod_labels(generation))
    # It selects generation pods only (workers and the rest share the instance labels).
    others = [d for d in of_kind(default_objects, "Deployment") if component(d) != "generation"]
    assert not any(selector_matches({"matchLabels": headless["spec"]["selector"]}, pod_labels(d)) for d in others)
    # DNS gives pod IPs, so the port clients dial is the container's own.
    (container,) = [c for c in containers(generation) if c["name"] == "generation"]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert headless["spec"]["ports"][0]["port"] == grpc_port
    assert headless["spec"]["ports"][0]["targetPort"] == "grpc"
    # The ClusterIP Service stays for calls that need no replica in particular.
    assert "clusterIP" not in named(default_objects, "Service", "start-generation")["spec"]


@pytest.mark.parametrize("deployment", ROUTED)
def test_orchestrator_and_workers_discover_replicas_through_it(default_objects, deployment: str) -> None:
    env = _routing_env(default_objects, deployment)
    assert env["START_GENERATION_DISCOVERY"] == f"{HEADLESS}:50051"
    assert env["START_GENERATION_ROUTING"] == "affinity"
    # What the chart writes is what the processes accept: the settings read it as they will.
    settings = {name.removeprefix("START_").lower(): value for name, value in env.items()}
    config = RoutingConfig.from_addresses(PeerAddresses(**settings))
    assert (config.discovery, config.policy, config.fallback_addr) == (
        f"{HEADLESS}:50051",
        "affinity",
        "start-generation:50051",
    )
    assert config.max_inflight_per_replica == chart_defaults()["generation"]["engine"]["maxNumSeqs"]


def test_routing_values_reach_every_worker_queue(render) -> None:
    routing = {"policy": "round_robin", "maxInflightPerReplica": 8, "discoveryIntervalSeconds": 2, "cooldownSeconds": 9}
    objects = render({"generation": {"routing": routing, "port": 50071}})
    assert named(objects, "Service", HEADLESS)["spec"]["ports"][0]["port"] == 50071
    for queue, deployment in worker_deployments(objects).items():
        env = env_of(containers(deployment)[0])
        assert env["START_GENERATION_DISCOVERY"] == f"{HEADLESS}:50071", queue
        assert env["START_GENERATION_ROUTING"] == "round_robin"
        assert env["START_GENERATION_MAX_INFLIGHT_PER_REPLICA"] == "8"
        assert env["START_GENERATION_DISCOVERY_INTERVAL_S"] == "2"
        assert env["START_GENERATION_COOLDOWN_S"] == "9"


def test_generation_pods_get_no_routing_settings(default_objects) -> None:
    env = env_of(containers(named(default_objects, "Deployment", "start-generation"))[0])
    assert "START_GENERATION_DISCOVERY" not in env and "START_GENERATION_ROUTING" not in env


@pytest.mark.parametrize(
    ("routing", "where"),
    [
        ({"policy": "random"}, "/generation/routing/policy"),
        ({"maxInflightPerReplica": 0}, "/generation/routing/maxInflightPerReplica"),
        ({"cooldownSeconds": 0}, "/generation/routing/cooldownSeconds"),
        ({"stickiness": True}, "stickiness"),
    ],
)
def test_schema_rejects_bad_routing_values(chart: helm.Chart, routing: dict, where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.render({"generation": {"routing": routing}}, name="start", namespace="start")
    assert where in str(caught.value)
