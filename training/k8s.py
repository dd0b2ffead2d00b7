"""The Kubernetes objects of a submitted training run: the chart's own, rendered for that run.

The chart (charts/start) is the one definition of a multi-node run: a suspended CronJob
whose jobTemplate is the Indexed Job (pod i is node rank i, `JOB_COMPLETION_INDEX`), the
headless Service that gives pod 0 the name `<job>-0.<service>` every pod rendezvouses
at, the ConfigMap with the training config (mounted at /etc/start/train/config.yaml),
the shared volume's PVC and the NetworkPolicy between the run's pods. Every pod runs
`startctl train launch`, the same launcher as a local run. An installed release starts a
run with `kubectl create job sft-1 --from=cronjob/<release>-train-sft`.

`startctl train submit` renders those same templates with real Helm (helm-python): the
run's name as the release name, so that each run has its own config and Service; the
user's settings as values over the chart's defaults (and over an operator's values
file); then keeps the training component's objects and makes the Job from the CronJob as
`kubectl create job --from=cronjob/...` does. Nothing here writes a manifest by hand. A
re-submitted run resumes from the newest checkpoint in `output_dir`, which therefore lives
on the shared volume.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "start"
COMPONENT = "train"  # app.kubernetes.io/component of the chart's training objects
# The annotation `kubectl create job --from=cronjob/...` puts on the Job it makes.
MANUAL_ANNOTATION = {"cronjob.kubernetes.io/instantiate": "manual"}


@dataclass(frozen=True)
class RunSettings:
    """What the user says about one run; None leaves the chart's (or the values file's) value."""

    name: str
    namespace: str
    config: dict[str, Any]  # the training config (TrainConfig's keys), as the ConfigMap will hold it
    nodes: int | None = None
    gpus_per_node: int | None = None
    nproc_per_node: int | None = None  # None: one per GPU where GPUs are given
    image: str | None = None  # a whole reference, repository[:tag]
    shared_claim: str | None = None  # an existing PVC (None: the chart creates one for the run)
    shared_mount: str | None = None
    master_port: int | None = None


def split_image(reference: str) -> tuple[str, str, str]:
    """(registry, repository, tag) of `[registry/]repository[:tag]`, as the chart's values hold
    an image. The first path part is a registry when it has a dot or a port, or is localhost
    (docker's rule); no tag means `latest`, as for docker and Kubernetes."""
    if "@" in reference:
        raise ValueError(f"image {reference!r}: the chart takes a tag, not a digest")
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:  # no tag, or the colon was a registry's port
        name, tag = reference, "latest"
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag
    return "", name, tag


def chart_values(defaults: dict[str, Any], settings: RunSettings) -> dict[str, Any]:
    """The chart's values (already merged with any values file) with the run's settings on top."""
    values = copy.deepcopy(defaults)
    training = values["training"]
    training["enabled"] = True
    training["config"] = settings.config
    nproc = settings.nproc_per_node
    if nproc is None and settings.gpus_per_node:
        nproc = settings.gpus_per_node  # one trainer process per GPU
    given = {"nodes": settings.nodes, "gpusPerNode": settings.gpus_per_node, "nprocPerNode": nproc,
             "masterPort": settings.master_port}
    training.update({key: value for key, value in given.items() if value is not None})
    if settings.image is not None:
        registry, repository, tag = split_image(settings.image)
        training["image"] = {"repository": repository, "tag": tag}
        values["image"]["registry"] = registry  # rendered here for the training objects only
    if settings.shared_claim is not None:
        training["sharedStorage"]["existingClaim"] = settings.shared_claim
    if settings.shared_mount is not None:
        training["sharedStorage"]["mountPath"] = settings.shared_mount
    return values


def job_from_cronjob(cronjob: dict[str, Any], name: str) -> dict[str, Any]:
    """The Job `kubectl create job NAME --from=cronjob/...` makes: the jobTemplate's labels,
    annotations and spec, under the Job's name, marked as started by hand. Without the
    ownerReference kubectl adds, since the CronJob need not exist in the cluster."""
    template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
    metadata = template.get("metadata", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cronjob["metadata"].get("namespace"),
            "labels": metadata.get("labels", {}),
            "annotations": {**metadata.get("annotations", {}), **MANUAL_ANNOTATION},
        },
        "spec": template["spec"],
    }


def render_run(settings: RunSettings, values_file: dict[str, Any] | None = None,
               chart_path: Path | None = None) -> list[dict[str, Any]]:
    """The run's objects, rendered from the chart: its training objects and the Job made from its CronJob.

    Raises helm_python.HelmError with Helm's message when the values break the chart's
    schema or a template refuses them (a name too long, nodes 0...).
    """
    import helm_python as helm

    chart_path = chart_path or CHART
    with helm.Chart.load(chart_path) as chart:
        values = chart_values(chart.merge_values(values_file or {}), settings)
        manifests = chart.render(values, name=settings.name, namespace=settings.namespace)
    objects = [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc and doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == COMPONENT
    ]
    for obj in objects:
        obj["metadata"]["namespace"] = settings.namespace
    cronjobs = [obj for obj in objects if obj["kind"] == "CronJob"]
    if len(cronjobs) != 1:
        raise ValueError(f"the chart at {chart_path} has {len(cronjobs)} training CronJobs; expected one")
    return [*(obj for obj in objects if obj["kind"] != "CronJob"), job_from_cronjob(cronjobs[0], settings.name)]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's config.yaml) as literal blocks, readable as written."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _represent_str)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False)


def create(objects: list[dict[str, Any]], namespace: str) -> None:
    """Create the objects with the kubeconfig's (or the pod's service account's) credentials."""
    from kubernetes import client, utils
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()
    api = client.ApiClient()
    for obj in objects:
        utils.create_from_dict(api, obj, namespace=namespace)
