"""Install the chart on a real cluster and run `helm test` (each service's gRPC health).

Skipped unless KUBECONFIG names a kubeconfig file. The cluster must be able to pull the
images (e.g. `skaffold build -p cpu --push --default-repo=REGISTRY`, then point
START_CHART_TEST_VALUES at a values file setting image.registry) and offer the gvisor
RuntimeClass (minikube: `minikube addons enable gvisor`). Without
START_CHART_TEST_VALUES the chart installs with values-cpu.yaml.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from chart_objects import CHART, load_values

KUBECONFIG = os.environ.get("KUBECONFIG", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (KUBECONFIG and Path(KUBECONFIG).is_file()), reason="KUBECONFIG does not point at a cluster's kubeconfig"
    ),
]


def _values() -> dict:
    path = os.environ.get("START_CHART_TEST_VALUES")
    return yaml.safe_load(Path(path).read_text()) if path else load_values("cpu")


def test_installed_chart_passes_helm_test_on_every_service() -> None:
    from kubernetes import client, config

    namespace = f"start-test-{uuid.uuid4().hex[:6]}"
    with helm.Config(kubeconfig_path=KUBECONFIG, namespace=namespace) as cluster:
        cluster.check_reachable()
        try:
            # Waits until every Deployment is available: the engine's load included.
            cluster.install(
                CHART, "start", _values(), namespace=namespace, create_namespace=True, wait="watcher", timeout=1800
            )
            result = cluster.test("start", timeout=600, logs=True)
            assert "SERVING" in result["logs"]
        finally:
            try:
                cluster.uninstall("start", ignore_not_found=True)
            finally:
                config.load_kube_config(KUBECONFIG)
                client.CoreV1Api().delete_namespace(namespace)


def test_the_generated_redis_password_survives_an_upgrade() -> None:
    """The Secret the chart makes is read back (lookup) on upgrade, not replaced: a new
    password would lock every running client out of the Redis still holding the old one."""
    from kubernetes import client, config

    namespace = f"start-test-{uuid.uuid4().hex[:6]}"
    config.load_kube_config(KUBECONFIG)
    core = client.CoreV1Api()
    with helm.Config(kubeconfig_path=KUBECONFIG, namespace=namespace) as cluster:
        cluster.check_reachable()
        try:
            cluster.install(CHART, "start", _values(), namespace=namespace, create_namespace=True, timeout=300)
            before = core.read_namespaced_secret("start-redis", namespace).data
            cluster.upgrade(CHART, "start", _values(), namespace=namespace, timeout=300)
            after = core.read_namespaced_secret("start-redis", namespace).data
            assert before == after and before["redis-password"]
        finally:
            try:
                cluster.uninstall("start", ignore_not_found=True)
            finally:
                core.delete_namespace(namespace)
