"""What operators rely on, asserted object by object: every pod locked down and bounded,
every service probed over gRPC health and drained before it is killed, the sandbox
isolated, disruptions budgeted, Redis persistent, secrets referenced. The workers' queues
and scaling are in test_chart_workers.py, job results in test_chart_results.py."""

from __future__ import annotations

import helm_python as helm
import pytest
import yaml
from chart_objects import (
    WORKER_QUEUES,
    chart_defaults,
    component,
    containers,
    env_of,
    load_values,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    selector_matches,
    worker_deployments,
    workloads,
)

GRPC_SERVICES = {"generation": 50051, "hints": 50052, "sandbox": 50053, "scoring": 50054, "orchestrator": 50050}
# Deployments that call the other services and Redis: the front door, each queue's workers, scoring.
PEER_CALLERS = ("start-orchestrator", *(f"start-workers-{queue}" for queue in WORKER_QUEUES), "start-scoring")


@pytest.fixture(scope="module", params=["default", "gpu"])
def objects(request, default_objects, gpu_objects):
    return {"default": default_objects, "gpu": gpu_objects}[request.param]


def test_every_pod_defaults_to_non_root_with_seccomp_and_no_service_account_token(objects) -> None:
    for obj in workloads(objects):
        spec = pod_spec(obj)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name


def test_every_container_is_read_only_unprivileged_and_drops_all_capabilities(objects) -> None:
    for obj in workloads(objects):
        for container in containers(obj):
            ctx = container["securityContext"]
            name = f"{obj['metadata']['name']}/{container['name']}"
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
            # A read-only root still needs a writable /tmp for Python, vLLM and executions.
            assert any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])) or obj["kind"] == "Pod"
            if name == "start-sandbox/sandbox":
                continue  # the one exception, asserted on its own below
            assert ctx["runAsNonRoot"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert "add" not in ctx["capabilities"], name


def test_only_the_sandbox_is_root_and_only_inside_gvisor_with_the_capabilities_it_needs(objects) -> None:
    """isolation=pod: root inside the gVisor pod, to give each execution its own uid and
    empty network namespace (docs/sandbox.md); never on the node's kernel."""
    deployment = named(objects, "Deployment", "start-sandbox")
    (container,) = containers(deployment)
    ctx = container["securityContext"]
    assert pod_spec(deployment)["runtimeClassName"] == "gvisor"
    assert env_of(container)["START_SANDBOX_ISOLATION"] == "pod"
    assert ctx["runAsUser"] == 0
    assert set(ctx["capabilities"]["add"]) == {
        "SETUID",
        "SETGID",
        "KILL",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "SYS_ADMIN",
    }
    assert "privileged" not in ctx
    # The API server rejects allowPrivilegeEscalation: false together with SYS_ADMIN.
    assert ctx["allowPrivilegeEscalation"] is True
    root_containers = [
        f"{w['metadata']['name']}/{c['name']}"
        for w in workloads(objects)
        for c in containers(w)
        if c["securityContext"].get("runAsUser", pod_spec(w)["securityContext"].get("runAsUser")) == 0
    ]
    assert root_containers == ["start-sandbox/sandbox"]


def test_every_container_requests_and_limits_cpu_and_memory(objects) -> None:
    for obj in workloads(objects):
        for container in containers(obj):
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), f"{obj['metadata']['name']} {bound}"


def test_every_long_running_container_has_readiness_and_liveness_probes(objects) -> None:
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in containers(obj):
            assert "readinessProbe" in container and "livenessProbe" in container, obj["metadata"]["name"]


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_each_service_is_probed_on_grpc_health_and_drains_before_sigkill(default_objects, service: str) -> None:
    deployment = named(default_objects, "Deployment", f"start-{service}")
    (container,) = containers(deployment)
    port = GRPC_SERVICES[service]
    env = env_of(container)
    prefix = f"START_{service.upper()}_"
    # On the plaintext port that serves health alone: kubelet's grpc probe cannot do the mTLS of
    # the gRPC port (test_chart_auth.py).
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": int(env[f"{prefix}HEALTH_PORT"])}, probe
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    assert env[f"{prefix}PORT"] == str(port)
    assert env[f"{prefix}LOG_FORMAT"] == "json"
    assert env[f"{prefix}METRICS_PORT"] == "9090"
    assert container["args"] == ["serve", service]
    # The kubelet's SIGKILL must not cut the server's own drain short.
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > float(env[f"{prefix}GRACE_S"])


def test_generation_start_up_allows_minutes_of_model_loading_before_liveness(objects) -> None:
    (container,) = containers(named(objects, "Deployment", "start-generation"))
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60


def test_peer_addresses_name_the_services_and_ports_that_exist(default_objects) -> None:
    services = {s["metadata"]["name"]: s for s in of_kind(default_objects, "Service")}
    for name in PEER_CALLERS:
        (container,) = containers(named(default_objects, "Deployment", name))
        env = env_of(container)
        for peer in GRPC_SERVICES:
            host, port = env[f"START_{peer.upper()}_ADDR"].split(":")
            assert host in services, f"{name}: {peer} address {host} is no Service"
            assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]]
        host = env["START_REDIS_URL"].removeprefix("redis://").split("@")[-1].split(":")[0]
        assert host in services


def test_sandbox_runs_under_gvisor_untrusted_without_api_access(default_objects) -> None:
    deployment = named(default_objects, "Deployment", "start-sandbox")
    spec = pod_spec(deployment)
    (container,) = containers(deployment)
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["automountServiceAccountToken"] is False
    assert env_of(container)["START_SANDBOX_TRUSTED"] == "false"
    assert all(not v.get("hostPath") for v in spec["volumes"])
    # The chart does not create the cluster-scoped RuntimeClass unless asked to.
    assert of_kind(default_objects, "RuntimeClass") == []


@pytest.mark.parametrize("setting", ["START_SANDBOX_TRUSTED", "START_SANDBOX_ISOLATION"])
def test_sandbox_isolation_cannot_be_undone_through_extra_env(render, setting: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=f"may not set {setting}"):
        render({"sandbox": {"extraEnv": [{"name": setting, "value": "true"}]}})
    extra = {"sandbox": {"extraEnv": [{"name": "START_SANDBOX_POOL_SIZE", "value": "4"}]}}
    (container,) = containers(named(render(extra), "Deployment", "start-sandbox"))
    assert env_of(container)["START_SANDBOX_POOL_SIZE"] == "4"


def test_chart_creates_the_gvisor_runtime_class_with_runsc_when_asked(render) -> None:
    (runtime_class,) = of_kind(render({"sandbox": {"runtimeClass": {"create": True}}}), "RuntimeClass")
    assert runtime_class["metadata"]["name"] == "gvisor"
    assert runtime_class["handler"] == "runsc"


@pytest.mark.parametrize("service", [*GRPC_SERVICES, "workers"])
def test_each_component_has_a_disruption_budget_selecting_exactly_its_pods(default_objects, service) -> None:
    budgets = [p for p in of_kind(default_objects, "PodDisruptionBudget") if component(p) == service]
    assert len(budgets) == 1
    selector = budgets[0]["spec"]["selector"]
    selected = {w["metadata"]["name"] for w in workloads(default_objects) if selector_matches(selector, pod_labels(w))}
    # One budget covers the workers of every queue.
    expected = {f"start-workers-{q}" for q in WORKER_QUEUES} if service == "workers" else {f"start-{service}"}
    assert selected == expected
    assert budgets[0]["spec"]["maxUnavailable"] == 1


def test_in_chart_redis_persists_queues_append_only_on_a_volume(default_objects) -> None:
    redis = named(default_objects, "StatefulSet", "start-redis")
    (container,) = containers(redis)
    assert "--appendonly" in container["args"]
    assert container["args"][container["args"].index("--appendonly") + 1] == "yes"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]


def test_external_redis_url_comes_from_a_secret_and_no_redis_is_deployed(render) -> None:
    objects = render({"redis": {"enabled": False, "external": {"existingSecret": "redis-conn"}}})
    assert of_kind(objects, "StatefulSet") == []
    assert "start-redis" not in {s["metadata"]["name"] for s in of_kind(objects, "Service")}
    for name in PEER_CALLERS:
        (container,) = containers(named(objects, "Deployment", name))
        ref = env_of(container)["START_REDIS_URL"]["secretKeyRef"]
        assert ref == {"name": "redis-conn", "key": "redis-url"}


def test_redis_password_is_referenced_from_a_secret_never_written_into_the_chart(render) -> None:
    objects = render({"redis": {"auth": {"existingSecret": "redis-auth"}}})
    # No Redis password Secret; the ones left are the gRPC certificate and token (test_chart_auth.py).
    assert [s["metadata"]["name"] for s in of_kind(objects, "Secret")] == ["start-auth-token", "start-tls"]
    (redis,) = containers(named(objects, "StatefulSet", "start-redis"))
    # The password reaches redis-server on stdin ("-"), never on its command line.
    assert "requirepass $REDIS_PASSWORD" in redis["command"][2] and redis["args"][-1] == "-"
    assert env_of(redis)["REDIS_PASSWORD"]["secretKeyRef"]["name"] == "redis-auth"
    for deployment in worker_deployments(objects).values():
        (worker,) = containers(deployment)
        names = [e["name"] for e in worker["env"]]
        # $(REDIS_PASSWORD) only expands when it is defined before the URL that uses it.
        assert names.index("REDIS_PASSWORD") < names.index("START_REDIS_URL")
        assert env_of(worker)["START_REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@start-redis:6379/0"


def test_hint_libraries_from_values_are_mounted_where_the_hints_service_reads_them(render) -> None:
    library = "name: chemistry\nhints: []\n"
    objects = render({"hints": {"library": {"files": {"chemistry.yaml": library}}}})
    configmap = named(objects, "ConfigMap", "start-hints-library")
    assert configmap["data"] == {"chemistry.yaml": library}
    deployment = named(objects, "Deployment", "start-hints")
    (container,) = containers(deployment)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "library")
    assert env_of(container)["START_HINTS_LIBRARY_DIR"] == mount["mountPath"]
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "library")
    assert volume["configMap"]["name"] == "start-hints-library"


def test_hint_library_from_an_existing_configmap_replaces_the_charts_own(render) -> None:
    objects = render({"hints": {"library": {"existingConfigMap": "team-hints"}}})
    assert "start-hints-library" not in {c["metadata"]["name"] for c in of_kind(objects, "ConfigMap")}
    volume = next(v for v in pod_spec(named(objects, "Deployment", "start-hints"))["volumes"] if v["name"] == "library")
    assert volume["configMap"]["name"] == "team-hints"


def test_helm_test_pods_check_the_health_of_each_service(default_objects) -> None:
    tests = [p for p in of_kind(default_objects, "Pod") if p["metadata"]["annotations"]["helm.sh/hook"] == "test"]
    checked = {}
    for pod in tests:
        (container,) = containers(pod)
        assert pod["spec"]["restartPolicy"] == "Never"
        assert "wait_serving" in container["args"][0]
        checked[container["args"][1]] = pod["metadata"]["name"]
    assert set(checked) == {f"start-{name}:{port}" for name, port in GRPC_SERVICES.items()}


def test_training_cronjob_is_a_suspended_template_for_indexed_multi_node_runs(default_objects) -> None:
    nodes = chart_defaults()["training"]["nodes"]
    cronjob = named(default_objects, "CronJob", "start-train-sft")
    assert cronjob["spec"]["suspend"] is True
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == nodes
    spec = pod_spec(cronjob)
    (container,) = containers(cronjob)
    assert container["args"] == ["train", "launch", "--config", "/etc/start/train/config.yaml"]
    env = env_of(container)
    assert env["JOB_NAME"] == {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}
    assert env["START_TRAIN_NNODES"] == str(nodes)
    assert env["START_TRAIN_MASTER_PORT"] == "29500"
    # Rank 0 is pod <job>-0, reachable through the headless Service named as the pods' subdomain.
    service = named(default_objects, "Service", spec["subdomain"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(cronjob))
    assert env["START_TRAIN_MASTER_ADDR"] == f"$(JOB_NAME)-0.{spec['subdomain']}"
    names = [e["name"] for e in container["env"]]
    assert names.index("JOB_NAME") < names.index("START_TRAIN_MASTER_ADDR")


def test_training_pods_share_a_persistent_volume_and_read_the_launcher_config(default_objects) -> None:
    cronjob = named(default_objects, "CronJob", "start-train-sft")
    spec = pod_spec(cronjob)
    volumes = {v["name"]: v for v in spec["volumes"]}
    claim = named(default_objects, "PersistentVolumeClaim", volumes["shared"]["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    config = named(default_objects, "ConfigMap", volumes["config"]["configMap"]["name"])
    assert yaml.safe_load(config["data"]["config.yaml"])["output_dir"].startswith("/shared/")
    (container,) = containers(cronjob)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/start/train" and mounts["shared"] == "/shared"


def test_a_failed_training_pod_is_retried_but_a_bad_config_fails_the_run(default_objects) -> None:
    job = named(default_objects, "CronJob", "start-train-sft")["spec"]["jobTemplate"]["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it
    # Restarts count one failed pod per node (torchrun stops every rank when one dies).
    assert job["backoffLimit"] == job["completions"] * chart_defaults()["training"]["maxRestarts"]
    rules = job["podFailurePolicy"]["rules"]
    fail = next(r for r in rules if r["action"] == "FailJob")
    assert fail["onExitCodes"] == {"containerName": "train", "operator": "In", "values": [2]}
    ignore = next(r for r in rules if r["action"] == "Ignore")
    assert ignore["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]


def test_every_object_carries_the_standard_labels(objects) -> None:
    for obj in objects:
        labels = obj["metadata"]["labels"]
        for key in ("name", "instance", "component", "part-of", "version", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"


@pytest.mark.parametrize("values_name", ["default", "cpu", "gpu"])
def test_training_config_in_the_chart_is_one_the_launcher_accepts(render, values_name, tmp_path) -> None:
    from training.config import load_config

    config_map = named(render(load_values(values_name)), "ConfigMap", "start-train")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    # Checkpoints must land on the shared volume, or a restarted pod has nothing to resume.
    assert load_config(str(path)).output_dir.startswith("/shared/")
