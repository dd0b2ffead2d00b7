"""Recipe runs in a cluster: dataset builds, exports and evaluations are Jobs made from three
suspended CronJobs (`kubectl create job eval-1 --from=cronjob/start-eval`), as training
runs are. Each pod runs `startctl` in the services image with its inputs in its environment,
and reaches the job results exactly as the orchestrator does: the results PVC (on the
orchestrator's node when it is ReadWriteOnce), or the object store with the same Secret."""

from __future__ import annotations

import re
import shutil
import subprocess

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from chart_objects import NAMESPACE, RELEASE, containers, env_of, named, of_kind, pod_labels, pod_spec, selector_matches

RECIPE_CRONJOBS = ("start-dataset-build", "start-dataset-export", "start-eval")
RESULTS_DIR = "/var/lib/start/results"
OBJECT_STORE = {"results": {"url": "s3://acme-start/results", "existingSecret": "results-s3"}}
SHARED_VOLUME = {"results": {"persistence": {"accessModes": ["ReadWriteMany"]}}}
KUBE_VERSION = "1.30.0"


def _run(objects, name: str) -> tuple[dict, dict, dict]:
    """A recipe CronJob, its one container and that container's environment."""
    cronjob = named(objects, "CronJob", name)
    (container,) = containers(cronjob)
    return cronjob, container, env_of(container)


def _expanded(container: dict, job_name: str) -> dict[str, str]:
    """The environment as the kubelet expands it: $(VAR) names a variable defined earlier."""
    # What the Job controller labels each pod of Job job_name with.
    labels = {"batch.kubernetes.io/job-name": job_name, "batch.kubernetes.io/controller-uid": f"uid-of-{job_name}"}
    values: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
            assert label and label.group(1) in labels, path
            values[item["name"]] = labels[label.group(1)]
            continue
        values[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), item["value"])
    return values


def _argv(container: dict, job_name: str) -> list[str]:
    """The command line the pod runs, with $(VAR) in the arguments expanded as the kubelet does."""
    env = _expanded(container, job_name)
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["args"]]


def test_three_suspended_cronjobs_are_templates_for_runs_started_by_hand(default_objects) -> None:
    cronjobs = {c["metadata"]["name"]: c for c in of_kind(default_objects, "CronJob")}
    assert set(RECIPE_CRONJOBS) <= set(cronjobs)
    for name in RECIPE_CRONJOBS:
        cronjob = cronjobs[name]
        assert cronjob["spec"]["suspend"] is True, name
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        component = name.removeprefix("start-")
        assert cronjob["metadata"]["labels"]["app.kubernetes.io/component"] == component
        assert pod_labels(cronjob)["app.kubernetes.io/component"] == component
        # One pod per run, no index, no parallelism: a run is one startctl command.
        job = cronjob["spec"]["jobTemplate"]["spec"]
        assert "completionMode" not in job and "parallelism" not in job


def test_runs_use_the_orchestrators_image_and_follow_its_tag(render, default_objects) -> None:
    (orchestrator,) = containers(named(default_objects, "Deployment", "start-orchestrator"))
    for name in RECIPE_CRONJOBS:
        _, container, _ = _run(default_objects, name)
        assert container["image"] == orchestrator["image"] == "start-services:0.1.0"
    objects = render({"orchestrator": {"image": {"repository": "start-services", "tag": "abc123"}}})
    for name in RECIPE_CRONJOBS:
        assert _run(objects, name)[1]["image"] == "start-services:abc123"


def test_a_hint_rft_build_reads_two_jobs_under_the_results_root_into_a_folder_named_for_the_run(render) -> None:
    objects = render({"recipeJobs": {"datasetBuild": {"greedyJob": "greedy-7", "hintInferJob": "hint-9"}}})
    _, container, env = _run(objects, "start-dataset-build")
    assert container["args"] == [
        "dataset", "build", "hint-rft",
        "--greedy", "$(GREEDY_JOB)", "--hint-infer", "$(HINT_INFER_JOB)",
        "--results", "$(RESULTS)", "--out", "$(OUT)",
    ]  # fmt: skip
    assert _argv(container, "build-1") == [
        "dataset", "build", "hint-rft", "--greedy", "greedy-7", "--hint-infer", "hint-9",
        "--results", RESULTS_DIR, "--out", f"{RESULTS_DIR}/datasets/build-1",
    ]  # fmt: skip
    assert "SAMPLES_JOB" not in env


def test_an_rft_build_reads_one_sample_job_and_takes_extra_arguments(render) -> None:
    build = {"recipe": "rft", "samplesJob": "s3://acme/jobs/sample-3", "extraArgs": ["--seed", "7"]}
    objects = render({**OBJECT_STORE, "recipeJobs": {"datasetBuild": build}})
    _, container, env = _run(objects, "start-dataset-build")
    assert _argv(container, "rft-1") == [
        "dataset", "build", "rft", "--samples", "s3://acme/jobs/sample-3",
        "--results", "s3://acme-start/results", "--out", "s3://acme-start/results/datasets/rft-1", "--seed", "7",
    ]  # fmt: skip
    assert "GREEDY_JOB" not in env and "HINT_INFER_JOB" not in env


def test_an_export_writes_the_chosen_format_beside_the_results(render, default_objects) -> None:
    _, container, env = _run(default_objects, "start-dataset-export")
    assert container["args"] == ["dataset", "export", "$(DATASET)", "--format", "$(FORMAT)", "--out", "$(OUT)"]
    # No dataset by default: each run names the one it exports.
    assert env["DATASET"] == "" and env["FORMAT"] == "start"
    objects = render({"recipeJobs": {"datasetExport": {"dataset": "datasets/build-1", "format": "messages"}}})
    _, container, _ = _run(objects, "start-dataset-export")
    assert _argv(container, "export-1") == [
        "dataset", "export", f"{RESULTS_DIR}/datasets/build-1",
        "--format", "messages", "--out", f"{RESULTS_DIR}/exports/export-1",
    ]  # fmt: skip


def test_an_evaluation_submits_through_the_front_door_and_prints_its_figures_as_json(render, default_objects) -> None:
    _, container, _ = _run(render({"recipeJobs": {"eval": {"problems": "problems/math500.jsonl"}}}), "start-eval")
    argv = _argv(container, "eval-1")
    assert argv == [
        "eval", "--problems", f"{RESULTS_DIR}/problems/math500.jsonl", "--arm", "greedy", "--samples", "0",
        "--out", f"{RESULTS_DIR}/evals/eval-1", "--key", "uid-of-eval-1",
        "--addr", "start-orchestrator:50050", "--json",
    ]  # fmt: skip
    # The address is the front door's Service, on the port it serves.
    host, port = argv[argv.index("--addr") + 1].split(":")
    service = named(default_objects, "Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    objects = render({"orchestrator": {"port": 50100}, "recipeJobs": {"eval": {"arm": "sample", "samples": 16}}})
    argv = _argv(_run(objects, "start-eval")[1], "eval-2")
    assert argv[argv.index("--addr") + 1] == "start-orchestrator:50100"
    assert argv[argv.index("--arm") + 1 : argv.index("--arm") + 4] == ["sample", "--samples", "16"]


def test_a_retried_evaluation_pod_follows_the_job_its_run_submitted(default_objects) -> None:
    """The idempotency key is the Job's uid: the same for every pod of one run, so a pod
    retried after a crash resumes the job instead of running the problem set again; a new
    run (even one named as a deleted one) gets a new uid and a new job."""
    _, container, env = _run(default_objects, "start-eval")
    assert container["args"][container["args"].index("--key") + 1] == "$(JOB_UID)"
    assert env["JOB_UID"] == {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}}
    for name in ("start-dataset-build", "start-dataset-export"):
        assert "JOB_UID" not in _run(default_objects, name)[2]


def test_locations_are_urls_absolute_paths_or_paths_under_the_results_root(render) -> None:
    eval_ = {"problems": "gs://benchmarks/aime.parquet", "out": "/var/lib/start/results/evals/base"}
    export = {"dataset": "datasets/build-1", "out": "s3://acme-train/data/$(JOB_NAME)"}
    objects = render({**OBJECT_STORE, "recipeJobs": {"eval": eval_, "datasetExport": export}})
    env = _expanded(_run(objects, "start-eval")[1], "eval-1")
    assert env["PROBLEMS"] == "gs://benchmarks/aime.parquet"
    assert env["OUT"] == "/var/lib/start/results/evals/base"
    env = _expanded(_run(objects, "start-dataset-export")[1], "export-1")
    assert env["DATASET"] == "s3://acme-start/results/datasets/build-1"
    assert env["OUT"] == "s3://acme-train/data/export-1"


def test_every_argument_variable_is_defined_before_anything_names_it(render) -> None:
    """The kubelet leaves $(VAR) as it is when VAR is not defined earlier in the list."""
    for values in ({}, OBJECT_STORE, {"recipeJobs": {"datasetBuild": {"recipe": "rft"}}}):
        objects = render(values)
        for name in RECIPE_CRONJOBS:
            _, container, _ = _run(objects, name)
            env = _expanded(container, "run-1")
            for text in [*container["args"], *env.values()]:
                for var in re.findall(r"\$\((\w+)\)", text):
                    assert var in env, f"{name}: $({var}) in {text!r} is not in its environment"
            assert all("$(" not in arg for arg in _argv(container, "run-1")), name


def test_runs_are_locked_down_bounded_and_have_a_scratch_tmp(default_objects) -> None:
    for name in RECIPE_CRONJOBS:
        cronjob, container, _ = _run(default_objects, name)
        spec = pod_spec(cronjob)
        assert spec["restartPolicy"] == "Never"
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), name
        tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
        assert tmp["emptyDir"] == {"sizeLimit": "2Gi"}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_bad_input_fails_a_run_at_once_and_other_failures_are_retried(render, default_objects) -> None:
    for name in RECIPE_CRONJOBS:
        cronjob, container, _ = _run(default_objects, name)
        job = cronjob["spec"]["jobTemplate"]["spec"]
        assert job["backoffLimit"] == 2
        assert job["ttlSecondsAfterFinished"] == 604800
        rules = job["podFailurePolicy"]["rules"]
        fail = next(r for r in rules if r["action"] == "FailJob")
        assert fail["onExitCodes"] == {"containerName": container["name"], "operator": "In", "values": [2]}
        ignore = next(r for r in rules if r["action"] == "Ignore")
        assert ignore["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    objects = render({"recipeJobs": {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600}})
    job = named(objects, "CronJob", "start-eval")["spec"]["jobTemplate"]["spec"]
    assert (job["backoffLimit"], job["ttlSecondsAfterFinished"]) == (0, 3600)


def test_on_the_default_read_write_once_pvc_runs_mount_it_on_the_orchestrators_node(default_objects) -> None:
    orchestrator = named(default_objects, "Deployment", "start-orchestrator")
    for name in RECIPE_CRONJOBS:
        cronjob, container, env = _run(default_objects, name)
        spec = pod_spec(cronjob)
        volume = next(v for v in spec["volumes"] if v["name"] == "results")
        assert volume["persistentVolumeClaim"] == {"claimName": "start-results"}
        assert {"name": "results", "mountPath": RESULTS_DIR} in container["volumeMounts"]
        assert env["RESULTS"] == RESULTS_DIR
        assert "envFrom" not in container
        # A ReadWriteOnce volume is attached to one node: the one the orchestrator runs on.
        (term,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert selector_matches(term["labelSelector"], pod_labels(orchestrator))
        others = [d for d in of_kind(default_objects, "Deployment") if d is not orchestrator]
        assert not any(selector_matches(term["labelSelector"], pod_labels(d)) for d in others)


def test_on_a_read_write_many_pvc_runs_mount_it_on_any_node(render) -> None:
    objects = render(SHARED_VOLUME)
    for name in RECIPE_CRONJOBS:
        cronjob, container, _ = _run(objects, name)
        spec = pod_spec(cronjob)
        assert "affinity" not in spec
        volume = next(v for v in spec["volumes"] if v["name"] == "results")
        assert volume["persistentVolumeClaim"] == {"claimName": "start-results"}
        assert {"name": "results", "mountPath": RESULTS_DIR} in container["volumeMounts"]


def test_with_an_object_store_runs_get_the_orchestrators_credentials_and_no_volume(render) -> None:
    objects = render(OBJECT_STORE)
    orchestrator = named(objects, "Deployment", "start-orchestrator")
    (front,) = containers(orchestrator)
    front_volumes = {v["name"]: v for v in pod_spec(orchestrator)["volumes"]}
    for name in RECIPE_CRONJOBS:
        cronjob, container, env = _run(objects, name)
        spec = pod_spec(cronjob)
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert env["RESULTS"] == "s3://acme-start/results"
        assert "results" not in volumes and "affinity" not in spec
        # The same Secret, the same way: as environment and as read-only files.
        assert container["envFrom"] == front["envFrom"] == [{"secretRef": {"name": "results-s3"}}]
        assert volumes["results-credentials"] == front_volumes["results-credentials"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "results-credentials")
        assert mount == next(m for m in front["volumeMounts"] if m["name"] == "results-credentials")
        assert mount["readOnly"] is True
    # The only Secrets the chart writes are generated ones: Redis' password, the gRPC certificate and token.
    names = [s["metadata"]["name"] for s in of_kind(objects, "Secret")]
    assert names == ["start-auth-token", "start-redis", "start-tls"]


@pytest.mark.parametrize(
    "results",
    [{"persistence": {"enabled": False}}, {"persistence": {"accessModes": ["ReadWriteOncePod"]}}],
    ids=["results-in-the-orchestrator-pod", "read-write-once-pod"],
)
def test_runs_are_left_out_where_only_the_orchestrator_can_reach_the_results_and_notes_say_so(
    chart: helm.Chart, render, results: dict
) -> None:
    names = {c["metadata"]["name"] for c in of_kind(render({"results": results}), "CronJob")}
    assert names == {"start-train-sft"}
    manifests = chart.render({"results": results}, name=RELEASE, namespace=NAMESPACE)
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    assert "recipe CronJobs (dataset build, export, eval) are left out" in notes
    assert "Set results.url" in notes


def test_switched_off_no_recipe_cronjob_is_made(render, chart: helm.Chart) -> None:
    objects = render({"recipeJobs": {"enabled": False}})
    assert {c["metadata"]["name"] for c in of_kind(objects, "CronJob")} == {"start-train-sft"}
    manifests = chart.render({"recipeJobs": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    assert "dataset-build" not in notes and "left out" not in notes


def test_extra_env_reaches_every_run(render) -> None:
    objects = render({"recipeJobs": {"extraEnv": [{"name": "START_SCORING_REPETITION_THRESHOLD", "value": "0.5"}]}})
    for name in RECIPE_CRONJOBS:
        assert _run(objects, name)[2]["START_SCORING_REPETITION_THRESHOLD"] == "0.5"


def test_notes_say_how_to_start_a_build_with_its_jobs(notes: str) -> None:
    assert "kubectl -n start create job build-1 --from=cronjob/start-dataset-build --dry-run=client -o yaml" in notes
    assert "kubectl set env --local -f - -o yaml GREEDY_JOB=" in notes
    assert "cronjob/start-dataset-export" in notes and "cronjob/start-eval" in notes


def test_a_release_name_too_long_for_a_recipe_cronjob_fails_with_what_to_do(chart: helm.Chart) -> None:
    # 40 characters: train-sft still fits in 52, dataset-export does not.
    with pytest.raises(helm.HelmRenderError, match="x{40}-dataset-export is longer than Kubernetes' 52 characters"):
        chart.render({"fullnameOverride": "x" * 40}, name=RELEASE, namespace=NAMESPACE)


BAD_VALUES = {
    "unknown builder": ({"recipeJobs": {"datasetBuild": {"recipe": "sft"}}}, "/recipeJobs/datasetBuild/recipe"),
    "unknown export format": ({"recipeJobs": {"datasetExport": {"format": "jsonl"}}}, "/recipeJobs/datasetExport"),
    "unknown arm": ({"recipeJobs": {"eval": {"arm": "hint"}}}, "/recipeJobs/eval/arm"),
    "negative samples": ({"recipeJobs": {"eval": {"samples": -1}}}, "/recipeJobs/eval/samples"),
    "no output": ({"recipeJobs": {"eval": {"out": ""}}}, "/recipeJobs/eval/out"),
    "job id with a space": ({"recipeJobs": {"datasetBuild": {"greedyJob": "a b"}}}, "greedyJob"),
    "args as one string": ({"recipeJobs": {"eval": {"extraArgs": "--seed 1"}}}, "/recipeJobs/eval/extraArgs"),
    "typo in a key": ({"recipeJobs": {"evals": {}}}, "evals"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_schema_rejects_bad_recipe_values_naming_the_key(chart: helm.Chart, case: str) -> None:
    values, where = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert where in str(caught.value)


VALUE_SETS = {
    "default": {},
    "object-store": OBJECT_STORE,
    "shared-volume": SHARED_VOLUME,
    "rft-sample-eval": {
        "recipeJobs": {
            "datasetBuild": {"recipe": "rft", "samplesJob": "job-1", "extraArgs": ["--seed", "3"]},
            "eval": {"arm": "sample", "samples": 16, "problems": "problems/aime.jsonl"},
            "extraEnv": [{"name": "START_LOG_LEVEL", "value": "DEBUG"}],
        }
    },
}


@pytest.mark.parametrize("values_name", VALUE_SETS)
def test_recipe_cronjobs_are_valid_for_kubernetes_1_30_strict(render, values_name: str) -> None:
    objects = render(VALUE_SETS[values_name])
    for name in RECIPE_CRONJOBS:
        cronjob = named(objects, "CronJob", name)
        try:
            kubernetes_validate.validate(cronjob, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {exc.message} at {list(exc.path)}")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_set_env_changes_one_runs_inputs_and_keeps_the_command(default_objects) -> None:
    """What docs/deployment.md shows: a Job made from the CronJob, its inputs set with
    `kubectl set env --local` (no cluster needed), before `kubectl apply`."""
    cronjob = named(default_objects, "CronJob", "start-dataset-build")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "build-2", "namespace": NAMESPACE},
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    }
    changed = subprocess.run(
        ["kubectl", "set", "env", "--local", "-f", "-", "-o", "yaml",
         "GREEDY_JOB=greedy-7", "HINT_INFER_JOB=hint-9", "OUT=$(RESULTS)/datasets/hint-rft-v2"],
        input=yaml.safe_dump(job), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    (container,) = yaml.safe_load(changed.stdout)["spec"]["template"]["spec"]["containers"]
    assert container["args"] == containers(cronjob)[0]["args"]
    # Changed in place: RESULTS still comes before OUT, which names it.
    assert [e["name"] for e in container["env"]] == [e["name"] for e in containers(cronjob)[0]["env"]]
    argv = _argv(container, "build-2")
    assert argv[argv.index("--greedy") + 1] == "greedy-7"
    assert argv[argv.index("--out") + 1] == f"{RESULTS_DIR}/datasets/hint-rft-v2"
