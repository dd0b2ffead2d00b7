"""`startctl train submit` creates the chart's training run: the Job is the CronJob's jobTemplate.

The chart is the one definition of a training run. A submitted run (training/k8s.py
`render_run`) must be exactly what `kubectl create job --from=cronjob/<release>-train-sft`
makes from the chart rendered with the run's settings as values, by real Helm, with
the chart's Service, ConfigMap, NetworkPolicy (and PVC) beside it.
"""

from __future__ import annotations

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from chart_objects import chart_defaults, containers, env_of, load_values, named, pod_spec

from training.config import load_config, resolve_config_path
from training.k8s import RunSettings, render_run, split_image

START_CONFIG = yaml.safe_load(resolve_config_path("start").read_text())


def _chart_objects(chart: helm.Chart, values: dict, name: str, namespace: str) -> list[dict]:
    manifests = chart.render(values, name=name, namespace=namespace)
    return [doc for path, text in sorted(manifests.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def _without_namespace(obj: dict) -> dict:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "namespace"}}


def test_a_submitted_job_is_the_cronjobs_job_template_with_the_runs_settings(chart) -> None:
    settings = RunSettings(
        name="start-0", namespace="ml", config=START_CONFIG, nodes=4, gpus_per_node=8,
        image="registry.example.com:5000/start-training:0.2", shared_claim="start-train", shared_mount="/shared",
        master_port=29600,
    )
    submitted = render_run(settings)
    for obj in submitted:
        kubernetes_validate.validate(obj, "1.30", strict=True)
        assert obj["metadata"]["namespace"] == "ml"
    # The same chart, rendered by hand with the values an operator would write for this run.
    values = {
        "image": {"registry": "registry.example.com:5000"},
        "training": {
            "nodes": 4, "gpusPerNode": 8, "nprocPerNode": 8, "masterPort": 29600, "config": START_CONFIG,
            "image": {"repository": "start-training", "tag": "0.2"},
            "sharedStorage": {"existingClaim": "start-train", "mountPath": "/shared"},
        },
    }
    reference = _chart_objects(chart, values, "start-0", "ml")
    cronjob = named(reference, "CronJob", "start-0-train-sft")
    template = cronjob["spec"]["jobTemplate"]

    job = named(submitted, "Job", "start-0")
    assert job["spec"] == template["spec"]
    assert job["metadata"]["labels"] == template["metadata"]["labels"]
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}  # as kubectl marks it
    others = [_without_namespace(obj) for obj in submitted if obj["kind"] != "Job"]
    assert others == [obj for obj in reference if obj["metadata"]["labels"]["app.kubernetes.io/component"] == "train"
                      and obj["kind"] != "CronJob"]
    assert sorted(obj["kind"] for obj in submitted) == ["ConfigMap", "Job", "NetworkPolicy", "Service"]  # no PVC

    # ...and the run's settings are in it.
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    assert job["spec"]["backoffLimit"] == 4 * chart_defaults()["training"]["maxRestarts"]
    (container,) = containers(job)
    assert container["image"] == "registry.example.com:5000/start-training:0.2"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    env = env_of(container)
    service = named(submitted, "Service", pod_spec(job)["subdomain"])
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["ports"][0]["port"] == 29600
    assert env["START_TRAIN_MASTER_ADDR"] == f"$(JOB_NAME)-0.{service['metadata']['name']}"
    assert (env["START_TRAIN_NNODES"], env["START_TRAIN_NPROC_PER_NODE"], env["START_TRAIN_MASTER_PORT"]) == (
        "4", "8", "29600")
    assert "DS_ACCELERATOR" not in env
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes["shared"]["persistentVolumeClaim"]["claimName"] == "start-train"
    config_map = named(submitted, "ConfigMap", volumes["config"]["configMap"]["name"])
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == START_CONFIG
    assert load_config("start") == type(load_config("start"))(**yaml.safe_load(config_map["data"]["config.yaml"]))


def test_a_run_with_only_a_config_takes_the_charts_defaults_and_its_own_volume() -> None:
    config = {"model": "/opt/start/models/start-micro", "data": ["/shared/data/micro.jsonl"],
              "output_dir": "/shared/runs/micro", "global_batch": 8}
    submitted = render_run(RunSettings(name="sft-1", namespace="default", config=config))
    defaults = chart_defaults()["training"]
    job = named(submitted, "Job", "sft-1")
    assert job["spec"]["completions"] == defaults["nodes"]
    env = env_of(containers(job)[0])
    assert env["START_TRAIN_NPROC_PER_NODE"] == str(defaults["nprocPerNode"])
    assert env["DS_ACCELERATOR"] == "cpu"  # gpusPerNode 0 in the chart: DeepSpeed's CPU accelerator
    claim = pod_spec(job)["volumes"][-1]["persistentVolumeClaim"]["claimName"]
    pvc = named(submitted, "PersistentVolumeClaim", claim)  # the chart's PVC, created for the run
    assert claim.startswith("sft-1") and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_an_operators_values_file_reaches_the_submitted_job_under_the_runs_settings() -> None:
    gpu = load_values("gpu")
    submitted = render_run(RunSettings(name="start-1", namespace="ml", config=START_CONFIG, nodes=2), gpu)
    job = named(submitted, "Job", "start-1")
    spec = pod_spec(job)
    assert spec["nodeSelector"] == gpu["training"]["nodeSelector"]
    assert spec["tolerations"] == gpu["training"]["tolerations"]
    assert job["spec"]["completions"] == 2  # the flag wins over the file's nodes
    assert containers(job)[0]["resources"]["limits"]["nvidia.com/gpu"] == str(gpu["training"]["gpusPerNode"])


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("start-training", ("", "start-training", "latest")),
        ("ml/start-training:0.1", ("", "ml/start-training", "0.1")),
        ("localhost:5000/start-training", ("localhost:5000", "start-training", "latest")),
        ("ghcr.io/acme/start-training:v2", ("ghcr.io", "acme/start-training", "v2")),
    ],
)
def test_an_image_reference_becomes_the_charts_registry_repository_and_tag(reference: str, parts: tuple) -> None:
    assert split_image(reference) == parts


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"master_port": 70000}, "masterPort"),
        ({"nodes": 0}, "nodes"),
        ({"name": "a-run-name-long-enough-to-break-the-cronjob-limit"}, "52 characters"),
    ],
)
def test_settings_the_chart_refuses_fail_with_helms_message(settings: dict, message: str) -> None:
    run = {"name": "start-0", "namespace": "ml", "config": START_CONFIG, **settings}
    with pytest.raises(helm.HelmError, match=message):
        render_run(RunSettings(**run))
