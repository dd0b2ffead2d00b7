"""Celery workers run a Deployment per step queue (generate, tool, score), each consuming its
own queue only and scaled on its own (a CPU HPA, or a KEDA ScaledObject on that queue's
Redis list); a queue's own settings win over the shared workers.* defaults."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_objects import (
    QUEUE_LABEL,
    WORKER_QUEUES,
    chart_defaults,
    component,
    containers,
    env_of,
    of_kind,
    pod_labels,
    selector_matches,
    worker_deployments,
    workloads,
)


def _by_queue(objects, kind: str) -> dict[str, dict]:
    return {obj["metadata"]["labels"][QUEUE_LABEL]: obj for obj in of_kind(objects, kind)}


def test_chart_queues_are_the_orchestrators_step_queues() -> None:
    from services.orchestrator.celery_app import QUEUES

    assert set(WORKER_QUEUES.values()) == set(QUEUES)
    assert set(chart_defaults()["workers"]["queues"]) == set(WORKER_QUEUES)


def test_each_queue_has_its_own_worker_deployment_consuming_only_that_queue(default_objects) -> None:
    deployments = worker_deployments(default_objects)
    assert {d["metadata"]["name"] for d in of_kind(default_objects, "Deployment") if component(d) == "workers"} == {
        f"start-workers-{queue}" for queue in WORKER_QUEUES
    }
    for queue, deployment in deployments.items():
        (container,) = containers(deployment)
        assert container["args"] == ["worker", "--queue", WORKER_QUEUES[queue]]
        assert "START_WORKER_QUEUES" not in env_of(container)
        labels = pod_labels(deployment)
        assert labels["app.kubernetes.io/component"] == "workers"
        assert labels[QUEUE_LABEL] == queue
        assert deployment["metadata"]["labels"][QUEUE_LABEL] == queue


def test_worker_deployments_select_only_their_own_pods(default_objects) -> None:
    """Overlapping selectors would make the Deployments fight over each other's pods."""
    for queue, deployment in worker_deployments(default_objects).items():
        selector = deployment["spec"]["selector"]
        selected = [
            w["metadata"]["name"] for w in workloads(default_objects) if selector_matches(selector, pod_labels(w))
        ]
        assert selected == [f"start-workers-{queue}"]


def test_generate_workers_run_more_threads_than_tool_and_score_workers(default_objects) -> None:
    concurrency = {
        queue: env_of(containers(deployment)[0])["START_WORKER_CONCURRENCY"]
        for queue, deployment in worker_deployments(default_objects).items()
    }
    # Generation steps mostly wait on the engine; tool and score steps take the shared default.
    assert concurrency == {"generate": "32", "tool": "8", "score": "8"}


def test_a_queues_own_settings_win_over_the_shared_defaults(render) -> None:
    objects = render(
        {
            "workers": {
                "autoscaling": {"enabled": False},
                "replicas": 3,
                "concurrency": 4,
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
                "queues": {
                    "tool": {"concurrency": 12, "replicas": 5},
                    "generate": {
                        "resources": {
                            "requests": {"cpu": "3", "memory": "1Gi"},
                            "limits": {"cpu": "4", "memory": "3Gi"},
                        }
                    },
                },
            }
        }
    )
    deployments = worker_deployments(objects)
    replicas = {queue: d["spec"]["replicas"] for queue, d in deployments.items()}
    assert replicas == {"generate": 3, "tool": 5, "score": 3}
    concurrency = {queue: env_of(containers(d)[0])["START_WORKER_CONCURRENCY"] for queue, d in deployments.items()}
    assert concurrency == {"generate": "32", "tool": "12", "score": "4"}
    limits = {queue: containers(d)[0]["resources"]["limits"]["memory"] for queue, d in deployments.items()}
    assert limits == {"generate": "3Gi", "tool": "2Gi", "score": "2Gi"}


def test_each_queue_autoscales_with_its_own_hpa_that_owns_the_replica_count(render, default_objects) -> None:
    hpas = _by_queue(default_objects, "HorizontalPodAutoscaler")
    assert set(hpas) == set(WORKER_QUEUES)
    for queue, hpa in hpas.items():
        name = f"start-workers-{queue}"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert "replicas" not in worker_deployments(default_objects)[queue]["spec"]
    assert of_kind(default_objects, "ScaledObject") == []

    overridden = {"workers": {"queues": {"generate": {"autoscaling": {"maxReplicas": 40, "minReplicas": 4}}}}}
    hpas = _by_queue(render(overridden), "HorizontalPodAutoscaler")
    assert (hpas["generate"]["spec"]["minReplicas"], hpas["generate"]["spec"]["maxReplicas"]) == (4, 40)
    assert (hpas["tool"]["spec"]["minReplicas"], hpas["tool"]["spec"]["maxReplicas"]) == (2, 20)


def test_each_queue_scales_with_keda_on_its_own_redis_list_instead_of_an_hpa(render) -> None:
    objects = render({"workers": {"keda": {"enabled": True}, "queues": {"tool": {"keda": {"listLength": 4}}}}})
    assert of_kind(objects, "HorizontalPodAutoscaler") == []
    scaled = _by_queue(objects, "ScaledObject")
    assert set(scaled) == set(WORKER_QUEUES)
    for queue, obj in scaled.items():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["spec"]["scaleTargetRef"] == {"name": f"start-workers-{queue}"}
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == WORKER_QUEUES[queue]
        # KEDA's operator dials from its own namespace: the Service's namespaced name.
        assert trigger["metadata"]["address"] == "start-redis.start.svc:6379"
        assert "replicas" not in worker_deployments(objects)[queue]["spec"]
    lengths = {queue: obj["spec"]["triggers"][0]["metadata"]["listLength"] for queue, obj in scaled.items()}
    assert lengths == {"generate": "32", "tool": "4", "score": "32"}


def test_workers_keep_a_fixed_replica_count_without_an_autoscaler(render) -> None:
    objects = render({"workers": {"autoscaling": {"enabled": False}, "replicas": 3}})
    assert of_kind(objects, "HorizontalPodAutoscaler") == of_kind(objects, "ScaledObject") == []
    assert {d["spec"]["replicas"] for d in worker_deployments(objects).values()} == {3}


def test_a_queue_whose_fewest_workers_exceed_its_most_fails_naming_the_queue(render) -> None:
    with pytest.raises(helm.HelmRenderError, match="workers.queues.score: autoscaling.minReplicas 30 is above"):
        render({"workers": {"queues": {"score": {"autoscaling": {"minReplicas": 30}}}}})


def test_workers_are_probed_by_a_celery_ping_to_themselves(default_objects) -> None:
    for deployment in worker_deployments(default_objects).values():
        (container,) = containers(deployment)
        command = " ".join(container["livenessProbe"]["exec"]["command"])
        assert "inspect ping" in command and "celery@$HOSTNAME" in command
