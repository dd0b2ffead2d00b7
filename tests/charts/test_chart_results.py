"""Job results: the orchestrator writes them where START_ORCHESTRATOR_RESULTS_URL says, by
default a PVC mounted in its pod (its root filesystem is read-only), or an object store
with credentials from an existing Secret; a ReadWriteOnce volume allows one replica."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_objects import containers, env_of, named, of_kind, pod_spec

RESULTS_DIR = "/var/lib/start/results"
OBJECT_STORE = {"results": {"url": "s3://acme-start/results", "existingSecret": "results-s3"}}


def _orchestrator(objects) -> tuple[dict, dict, dict]:
    deployment = named(objects, "Deployment", "start-orchestrator")
    (container,) = containers(deployment)
    return deployment, container, env_of(container)


def test_results_default_to_a_kept_pvc_mounted_where_the_orchestrator_writes(default_objects) -> None:
    deployment, container, env = _orchestrator(default_objects)
    claim = named(default_objects, "PersistentVolumeClaim", "start-results")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "storageClassName" not in claim["spec"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "results")
    assert volume["persistentVolumeClaim"] == {"claimName": "start-results"}
    assert {"name": "results", "mountPath": RESULTS_DIR} in container["volumeMounts"]
    assert env["START_ORCHESTRATOR_RESULTS_URL"] == RESULTS_DIR
    assert env["START_ORCHESTRATOR_ALLOWED_URL_PREFIXES"] == RESULTS_DIR, "no other file is readable by a job"
    assert "envFrom" not in container


def test_one_orchestrator_on_a_read_write_once_volume_is_replaced_not_rolled(default_objects) -> None:
    """A rolling update would start the new pod while the old one holds the volume."""
    deployment, _, _ = _orchestrator(default_objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_more_front_doors_on_a_read_write_once_volume_fail_with_what_to_set(render) -> None:
    with pytest.raises(helm.HelmRenderError, match="set results.url to an object store"):
        render({"orchestrator": {"replicas": 2}})


def test_a_read_write_many_volume_serves_several_front_doors_rolled_as_usual(render) -> None:
    objects = render({"orchestrator": {"replicas": 2}, "results": {"persistence": {"accessModes": ["ReadWriteMany"]}}})
    deployment, _, _ = _orchestrator(objects)
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]
    assert named(objects, "PersistentVolumeClaim", "start-results")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_results_in_an_object_store_need_no_volume_and_take_credentials_from_a_secret(render) -> None:
    objects = render({**OBJECT_STORE, "orchestrator": {"replicas": 3, "jobs": {"allowedUrlPrefixes": ["s3://acme-start/sets"]}}})
    assert "start-results" not in {c["metadata"]["name"] for c in of_kind(objects, "PersistentVolumeClaim")}
    deployment, container, env = _orchestrator(objects)
    assert env["START_ORCHESTRATOR_RESULTS_URL"] == "s3://acme-start/results"
    assert env["START_ORCHESTRATOR_ALLOWED_URL_PREFIXES"] == "s3://acme-start/results,s3://acme-start/sets"
    assert container["envFrom"] == [{"secretRef": {"name": "results-s3"}}]
    # Several front doors share the bucket; nothing pins them to one node.
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert "results" not in volumes
    # The same Secret, as files: GOOGLE_APPLICATION_CREDENTIALS can name a key file in it.
    assert volumes["results-credentials"]["secret"] == {"secretName": "results-s3"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "results-credentials")
    assert mount["readOnly"] is True
    # The secret is referenced, never written into the chart (whose Secrets are generated: Redis' password,
    # the gRPC certificate and token).
    names = [s["metadata"]["name"] for s in of_kind(objects, "Secret")]
    assert names == ["start-auth-token", "start-redis", "start-tls"]


def test_results_without_persistence_live_in_the_pod(render) -> None:
    objects = render({"results": {"persistence": {"enabled": False}}})
    assert "start-results" not in {c["metadata"]["name"] for c in of_kind(objects, "PersistentVolumeClaim")}
    deployment, container, env = _orchestrator(objects)
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "results")
    assert volume == {"name": "results", "emptyDir": {}}
    assert env["START_ORCHESTRATOR_RESULTS_URL"] == RESULTS_DIR
    assert "strategy" not in deployment["spec"]


def test_results_pvc_takes_its_size_and_storage_class(render) -> None:
    objects = render({"results": {"persistence": {"size": "100Gi", "storageClass": "fast"}}})
    claim = named(objects, "PersistentVolumeClaim", "start-results")
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_job_limits_reach_the_front_door(render, default_objects) -> None:
    _, _, env = _orchestrator(default_objects)
    assert env["START_ORCHESTRATOR_JOB_MAX_IN_FLIGHT"] == "2048"
    assert env["START_ORCHESTRATOR_RECONCILE_AFTER_S"] == "900"
    objects = render({"orchestrator": {"jobs": {"maxInFlight": 64, "reconcileAfterSeconds": 1800}}})
    _, _, env = _orchestrator(objects)
    assert env["START_ORCHESTRATOR_JOB_MAX_IN_FLIGHT"] == "64"
    assert env["START_ORCHESTRATOR_RECONCILE_AFTER_S"] == "1800"


def test_only_the_front_door_writes_results(default_objects) -> None:
    for deployment in of_kind(default_objects, "Deployment"):
        if deployment["metadata"]["name"] == "start-orchestrator":
            continue
        (container,) = containers(deployment)
        assert "START_ORCHESTRATOR_RESULTS_URL" not in env_of(container), deployment["metadata"]["name"]
