"""The launcher reads the Indexed Job's environment; `startctl train submit --dry-run` prints
the chart's valid manifests of a Job whose pods find each other through its headless Service."""

from __future__ import annotations

import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from training.config import load_config
from training.launcher import Rendezvous, torchrun_args


def test_rendezvous_comes_from_the_indexed_job_environment(monkeypatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    monkeypatch.setenv("START_TRAIN_NNODES", "4")
    monkeypatch.setenv("START_TRAIN_NPROC_PER_NODE", "8")
    monkeypatch.setenv("START_TRAIN_MASTER_ADDR", "sft-1-0.sft-1")
    args = torchrun_args(Rendezvous(), "/etc/start/train/config.yaml", ["epochs=1"])
    assert args[:5] == ["--nnodes=4", "--node_rank=3", "--nproc_per_node=8", "--master_addr=sft-1-0.sft-1",
                        "--master_port=29500"]
    assert args[5:] == ["-m", "training.sft", "--config", "/etc/start/train/config.yaml", "--set", "epochs=1"]


def test_a_node_rank_outside_the_run_is_refused() -> None:
    with pytest.raises(ValueError, match="node rank 2"):
        torchrun_args(Rendezvous(nnodes=2, node_rank=2), "micro", [])


def test_global_batch_that_does_not_divide_over_the_ranks_is_refused() -> None:
    cfg = load_config("start")
    assert cfg.accumulation(32) == 4  # the paper's 4 nodes x 8 GPUs
    with pytest.raises(ValueError, match="not a multiple"):
        cfg.accumulation(48)


def test_submit_dry_run_prints_the_charts_indexed_job_with_its_headless_service() -> None:
    """The CLI end to end; tests/charts/test_chart_train_submit.py checks the Job against the chart's CronJob."""
    out = subprocess.run(
        [sys.executable, "-m", "startctl", "train", "submit", "--nodes", "4", "--gpus-per-node", "8",
         "--config", "start", "--name", "start-0", "--volume-claim", "start-train:/shared", "--dry-run"],
        capture_output=True, text=True, check=True,
    ).stdout
    objects = {o["kind"]: o for o in yaml.safe_load_all(out)}
    assert sorted(objects) == ["ConfigMap", "Job", "NetworkPolicy", "Service"]
    for obj in objects.values():
        kubernetes_validate.validate(obj, "1.30", strict=True)
    job, service = objects["Job"], objects["Service"]
    assert job["metadata"]["name"] == "start-0"
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["START_TRAIN_NNODES"] == "4" and env["START_TRAIN_NPROC_PER_NODE"] == "8"
    assert env["START_TRAIN_MASTER_ADDR"] == f"$(JOB_NAME)-0.{service['metadata']['name']}"
    assert container["args"][:2] == ["train", "launch"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["shared"] == "/shared"
    assert load_config("start").model_dump() == type(load_config("start"))(
        **yaml.safe_load(objects["ConfigMap"]["data"]["config.yaml"])
    ).model_dump()


def test_submit_settings_the_chart_refuses_exit_2_with_what_to_fix() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "startctl", "train", "submit", "--config", "start", "--master-port", "70000",
         "--dry-run"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "/training/masterPort" in proc.stderr and not proc.stdout
