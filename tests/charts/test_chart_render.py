"""The chart renders, lints clean and makes only objects a Kubernetes 1.30 API server accepts."""

from __future__ import annotations

import helm_python as helm
import kubernetes_validate
import pytest
from chart_objects import (
    CHART,
    VALUES_FILES,
    component,
    containers,
    env_of,
    load_values,
    named,
    of_kind,
    pod_spec,
)

KUBE_VERSION = "1.30.0"
# Custom resources the strict Kubernetes schemas cannot know; asserted field by field elsewhere.
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication"}
SERVICES = ("generation", "hints", "sandbox", "scoring", "orchestrator")


@pytest.mark.parametrize("values_name", VALUES_FILES)
def test_helm_lint_reports_no_warnings_or_errors(values_name: str) -> None:
    report = helm.lint(CHART, load_values(values_name), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], problems


# Each values set an operator may install with, including the optional parts switched on.
VALUE_SETS = {
    **{name: load_values(name) for name in VALUES_FILES},
    "keda": {"workers": {"keda": {"enabled": True}}},
    "external-redis": {"redis": {"enabled": False, "external": {"existingSecret": "redis-conn"}}},
    "redis-auth-runtimeclass": {
        "redis": {"auth": {"existingSecret": "redis-auth"}},
        "sandbox": {"runtimeClass": {"create": True}},
        "hints": {"library": {"files": {"chemistry.yaml": "name: chemistry\n"}}},
        "generation": {"model": {"existingClaim": "models", "path": "/models/m"}},
    },
    "results-object-store-per-queue-workers": {
        "results": {"url": "gs://acme-start/results", "existingSecret": "results-gcs"},
        "orchestrator": {"replicas": 3},
        "workers": {
            "queues": {
                "generate": {"concurrency": 64, "autoscaling": {"minReplicas": 4, "maxReplicas": 40}},
                "tool": {
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
                },
            }
        },
    },
    "results-shared-volume-fixed-workers": {
        "results": {"persistence": {"accessModes": ["ReadWriteMany"], "storageClass": "nfs"}},
        "orchestrator": {"replicas": 2},
        "workers": {"autoscaling": {"enabled": False}, "queues": {"score": {"replicas": 1}}},
    },
}


@pytest.mark.parametrize("values_name", VALUE_SETS)
def test_every_object_is_valid_for_kubernetes_1_30_strict(render, values_name: str) -> None:
    objects = render(VALUE_SETS[values_name])
    assert objects
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_default_render_runs_every_service_behind_its_own_service(default_objects) -> None:
    deployments = {component(d) for d in of_kind(default_objects, "Deployment")}
    services = {component(s) for s in of_kind(default_objects, "Service")}
    assert deployments == {*SERVICES, "workers"}
    assert set(SERVICES) <= services
    assert {"redis", "train"} <= services
    assert [component(s) for s in of_kind(default_objects, "StatefulSet")] == ["redis"]


def test_every_process_serves_prometheus_metrics_on_a_named_port(default_objects) -> None:
    for deployment in of_kind(default_objects, "Deployment"):
        container = pod_spec(deployment)["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        prefix = "START_WORKER_" if component(deployment) == "workers" else f"START_{component(deployment).upper()}_"
        assert ports.get("metrics") == 9090, component(deployment)
        assert env_of(container)[f"{prefix}METRICS_PORT"] == "9090", component(deployment)


def test_default_generation_is_the_cpu_build_serving_the_bundled_micro_model(default_objects) -> None:
    deployment = named(default_objects, "Deployment", "start-generation")
    (container,) = containers(deployment)
    env = env_of(container)
    assert container["image"] == "start-generation:0.1.0"
    assert env["START_GENERATION_MODEL"] == "/opt/start/models/start-micro"
    assert env["START_GENERATION_TENSOR_PARALLEL_SIZE"] == "1"
    assert "VLLM_CPU_KVCACHE_SPACE" in env
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert "nodeSelector" not in pod_spec(deployment)


def test_laptop_values_run_the_cpu_engine_unpinned_beside_the_other_pods(render) -> None:
    deployment = named(render(load_values("cpu")), "Deployment", "start-generation")
    (container,) = containers(deployment)
    env = env_of(container)
    # vLLM's pinned, busy-waiting CPU worker starves co-located processes (docs/generation.md).
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert env["OMP_NUM_THREADS"] == "1"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in env_of(containers(named(render(), "Deployment", "start-generation"))[0])


def test_gpu_values_shard_the_model_over_requested_gpus_on_gpu_nodes(gpu_objects) -> None:
    values = load_values("gpu")["generation"]
    deployment = named(gpu_objects, "Deployment", "start-generation")
    spec = pod_spec(deployment)
    (container,) = containers(deployment)
    env = env_of(container)
    gpus = str(values["engine"]["tensorParallelSize"])
    assert container["image"] == "start-generation-gpu:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert env["START_GENERATION_TENSOR_PARALLEL_SIZE"] == gpus
    assert env["START_GENERATION_DTYPE"] == "bfloat16"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    # Weights come read-only from the PVC; tensor-parallel workers share memory through /dev/shm.
    claim = next(v for v in spec["volumes"] if v["name"] == "model")["persistentVolumeClaim"]
    assert claim == {"claimName": values["model"]["existingClaim"], "readOnly": True}
    assert env["START_GENERATION_MODEL"].startswith(container["volumeMounts"][-1]["mountPath"])
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")["emptyDir"]
    assert shm["medium"] == "Memory"
    assert "VLLM_CPU_KVCACHE_SPACE" not in env


def test_gpu_values_train_on_gpu_nodes_with_a_gpu_per_rank(gpu_objects) -> None:
    values = load_values("gpu")["training"]
    cronjob = named(gpu_objects, "CronJob", "start-train-sft")
    (container,) = containers(cronjob)
    env = env_of(container)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(values["gpusPerNode"])
    assert env["START_TRAIN_NPROC_PER_NODE"] == str(values["nprocPerNode"])
    assert "DS_ACCELERATOR" not in env
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["completions"] == job["parallelism"] == values["nodes"]


def test_notes_say_how_to_reach_the_front_door_and_start_training(notes: str) -> None:
    assert "kubectl -n start port-forward svc/start-orchestrator 50050:50050" in notes
    assert "startctl solve --addr 127.0.0.1:50050" in notes
    assert "kubectl -n start create job sft-1 --from=cronjob/start-train-sft" in notes
    assert "helm test start" in notes
