"""Readers for the objects a rendered chart makes, shared by the chart tests: where a
workload keeps its pods, their labels, containers and environment, and how a Kubernetes
label selector matches (so NetworkPolicy and PDB tests check selectors the way the API does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "start"
RELEASE = "start"
NAMESPACE = "start"

# The example values files shipped beside the chart, by the name the tests give them.
VALUES_FILES = {"default": None, "cpu": CHART / "values-cpu.yaml", "gpu": CHART / "values-gpu.yaml"}

# Pod-owning kinds, and where each keeps its pod spec.
POD_SPEC_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}

Objects = list[dict[str, Any]]

# The orchestrator's Celery step queues (services/orchestrator/celery_app.py), by the key the
# chart gives each under workers.queues: one worker Deployment `<release>-workers-<key>` each.
WORKER_QUEUES = {"generate": "start.generate", "tool": "start.tool", "score": "start.score"}
# The label that tells one queue's workers from another's (all carry component "workers").
QUEUE_LABEL = "start.dev/queue"


def load_values(name: str) -> dict[str, Any]:
    """The values an operator passes with -f (none for the chart defaults)."""
    path = VALUES_FILES[name]
    return {} if path is None else yaml.safe_load(path.read_text())


def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def of_kind(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    for obj in of_kind(objects, kind):
        if obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} named {name}; have {[o['metadata']['name'] for o in of_kind(objects, kind)]}")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj
    for key in POD_SPEC_PATHS[obj["kind"]]:
        spec = spec[key]
    return spec


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    """Labels the pods of a workload carry (a Pod's own labels for a bare Pod)."""
    if obj["kind"] == "Pod":
        return obj["metadata"]["labels"]
    template = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return template["template"]["metadata"]["labels"]


def workloads(objects: Objects) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in POD_SPEC_PATHS]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """Name -> value (or the valueFrom mapping) of a container's environment."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector against a label set (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def worker_deployments(objects: Objects, release: str = RELEASE) -> dict[str, dict[str, Any]]:
    """Each queue's worker Deployment, by the queue's key under workers.queues."""
    return {queue: named(objects, "Deployment", f"{release}-workers-{queue}") for queue in WORKER_QUEUES}
