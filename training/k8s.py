"""The Kubernetes objects of a multi-node run: an Indexed Job, its headless Service, its config.

Pod i of the Indexed Job is node rank i (`JOB_COMPLETION_INDEX`, set by Kubernetes); the
headless Service gives pod 0 the stable name `<job>-0.<job>` that every pod uses as the
rendezvous address; the training config travels as a ConfigMap mounted at
`/etc/start/train/config.yaml`. Every pod runs `startctl train launch`, the same launcher as
a local run. A re-submitted Job resumes from the newest checkpoint in `output_dir`, which
therefore lives on shared storage (a ReadWriteMany claim).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from kubernetes import client

CONFIG_MOUNT = "/etc/start/train"  # where the chart mounts it too


@dataclass(frozen=True)
class JobSpec:
    name: str
    namespace: str
    image: str
    nodes: int
    gpus_per_node: int
    config_yaml: str
    master_port: int = 29500
    max_restarts: int = 3  # restarts from the last checkpoint before the Job fails (as the chart)
    volume_claims: list[tuple[str, str]] = field(default_factory=list)  # (claim, mount path)
    shm_gb: int = 64  # NCCL and the data loader need more /dev/shm than a container's default


def _labels(spec: JobSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": "start", "app.kubernetes.io/component": "training",
            "start.dev/run": spec.name}


def manifests(spec: JobSpec) -> list[client.V1ConfigMap | client.V1Service | client.V1Job]:
    labels = _labels(spec)
    meta = client.V1ObjectMeta(name=spec.name, namespace=spec.namespace, labels=labels)
    config_map = client.V1ConfigMap(api_version="v1", kind="ConfigMap", metadata=meta,
                                    data={"config.yaml": spec.config_yaml})
    service = client.V1Service(
        api_version="v1", kind="Service", metadata=meta,
        spec=client.V1ServiceSpec(
            cluster_ip="None", selector=labels, publish_not_ready_addresses=True,
            ports=[client.V1ServicePort(name="rendezvous", port=spec.master_port)],
        ),
    )
    env = [
        client.V1EnvVar(name="START_TRAIN_NNODES", value=str(spec.nodes)),
        client.V1EnvVar(name="START_TRAIN_NPROC_PER_NODE", value=str(spec.gpus_per_node)),
        client.V1EnvVar(name="START_TRAIN_MASTER_ADDR", value=f"{spec.name}-0.{spec.name}"),
        client.V1EnvVar(name="START_TRAIN_MASTER_PORT", value=str(spec.master_port)),
    ]
    mounts = [client.V1VolumeMount(name="config", mount_path=CONFIG_MOUNT, read_only=True),
              client.V1VolumeMount(name="shm", mount_path="/dev/shm")]
    volumes = [
        client.V1Volume(name="config", config_map=client.V1ConfigMapVolumeSource(name=spec.name)),
        client.V1Volume(name="shm", empty_dir=client.V1EmptyDirVolumeSource(
            medium="Memory", size_limit=f"{spec.shm_gb}Gi")),
    ]
    for i, (claim, path) in enumerate(spec.volume_claims):
        volumes.append(client.V1Volume(
            name=f"data-{i}", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name=claim)))
        mounts.append(client.V1VolumeMount(name=f"data-{i}", mount_path=path))
    container = client.V1Container(
        name="trainer", image=spec.image,
        command=["startctl", "train", "launch", "--config", f"{CONFIG_MOUNT}/config.yaml"],
        env=env, volume_mounts=mounts,
        ports=[client.V1ContainerPort(name="rendezvous", container_port=spec.master_port)],
        resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": str(spec.gpus_per_node)}),
    )
    job = client.V1Job(
        api_version="batch/v1", kind="Job", metadata=meta,
        spec=client.V1JobSpec(
            completion_mode="Indexed", completions=spec.nodes, parallelism=spec.nodes,
            # When one rank dies, torchrun stops the rest: a restart costs one failed pod per
            # node. Recreated pods keep their index and resume from the newest checkpoint.
            backoff_limit=spec.nodes * spec.max_restarts,
            pod_failure_policy=client.V1PodFailurePolicy(rules=[
                # Exit 2 is a bad config or command line: retrying cannot help.
                client.V1PodFailurePolicyRule(
                    action="FailJob",
                    on_exit_codes=client.V1PodFailurePolicyOnExitCodesRequirement(
                        container_name="trainer", operator="In", values=[2]),
                ),
                # A drained or preempted node is not the run's fault: retry without counting it.
                client.V1PodFailurePolicyRule(
                    action="Ignore",
                    on_pod_conditions=[client.V1PodFailurePolicyOnPodConditionsPattern(
                        type="DisruptionTarget", status="True")],
                ),
            ]),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    subdomain=spec.name,  # pod i resolves as <job>-i.<job>
                    restart_policy="Never", containers=[container], volumes=volumes,
                ),
            ),
        ),
    )
    return [config_map, service, job]


def to_yaml(objects: list) -> str:
    api = client.ApiClient()
    return yaml.safe_dump_all([api.sanitize_for_serialization(o) for o in objects], sort_keys=False)


def create(objects: list, namespace: str) -> None:
    """Create the objects with the kubeconfig's (or the pod's service account's) credentials."""
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()
    core, batch = client.CoreV1Api(), client.BatchV1Api()
    for obj in objects:
        if isinstance(obj, client.V1ConfigMap):
            core.create_namespaced_config_map(namespace, obj)
        elif isinstance(obj, client.V1Service):
            core.create_namespaced_service(namespace, obj)
        else:
            batch.create_namespaced_job(namespace, obj)
