"""Real DeepSpeed ZeRO-3 runs on CPU over gloo, started the way users and the Job start them.

One module-scoped uninterrupted run (`startctl train sft --nproc 2`: two processes, one
node) is the reference. A two-"node" run on loopback (`startctl train launch` twice, with
the environment an Indexed Job gives its pods) is killed with SIGKILL after its first
checkpoint and launched again: it must end with exactly the reference's weights.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

from startctl.processes import free_port
from training.data import write_samples

pytestmark = pytest.mark.slow

STARTCTL = [sys.executable, "-m", "startctl", "train"]
# One thread per process on both layouts, so that float sums run in the same order.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}


def write_config(tmp: Path, model_dir: Path, samples, name: str) -> Path:
    data = tmp / "data.jsonl"
    if not data.exists():
        write_samples(samples[:56], data)  # at least 4 steps of 4 packed sequences: one checkpoint before the kill
    config = {
        "model": str(model_dir), "data": [str(data)], "output_dir": str(tmp / name),
        "lr": 1e-3, "epochs": 1, "global_batch": 4, "micro_batch": 1, "max_seq_len": 512, "pack_len": 512,
        "save_every": 2, "precision": "fp32",
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def final_fp32_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return get_fp32_state_dict_from_zero_checkpoint(str(run_dir / "checkpoints"))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, model_dir, samples) -> Path:
    tmp = tmp_path_factory.mktemp("sft")
    config = write_config(tmp, model_dir, samples, "reference")
    proc = subprocess.run([*STARTCTL, "sft", "--config", str(config), "--nproc", "2"], env=ENV,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (tmp / "reference.log").write_text(proc.stderr)
    return tmp / "reference"


def test_two_process_zero3_run_logs_metrics_and_saves_a_model_transformers_loads(reference_run, tokenizer) -> None:
    log = (reference_run.parent / "reference.log").read_text()
    assert "global batch 4 = micro 1 x accumulation 2 x ranks 2" in log
    steps = [json.loads(line) for line in (reference_run / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 4
    assert all(s["train/tokens_per_s"] > 0 and s["train/mfu"] is None for s in steps)  # no MFU on CPU
    # Warmup of ceil(3% of the steps) = 1 step counts from step 1, so step 1 trains at the
    # peak; then cosine down, every step above zero (training/schedule.py).
    assert steps[0]["train/lr"] == pytest.approx(1e-3)
    assert all(a["train/lr"] > b["train/lr"] > 0 for a, b in zip(steps, steps[1:], strict=False))
    # DeepSpeed's deprecated torch.distributed calls warned on every step, burying the bar;
    # the filter is exact (training/library_warnings.py), so any FutureWarning is a new one.
    assert "FutureWarning" not in log, log
    assert list((reference_run / "tensorboard").glob("events.out.tfevents.*"))

    model = AutoModelForCausalLM.from_pretrained(reference_run / "final")
    prompt = AutoTokenizer.from_pretrained(reference_run / "final").apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def launch_nodes(config: Path, port: int, log: Path) -> list[subprocess.Popen]:
    """Two nodes on loopback, with exactly the environment the Indexed Job gives its pods."""
    procs = []
    for index in range(2):
        env = {**ENV, "JOB_COMPLETION_INDEX": str(index), "START_TRAIN_NNODES": "2",
               "START_TRAIN_NPROC_PER_NODE": "1", "START_TRAIN_MASTER_ADDR": "127.0.0.1",
               "START_TRAIN_MASTER_PORT": str(port)}
        with open(f"{log}.{index}", "w") as out:
            procs.append(subprocess.Popen([*STARTCTL, "launch", "--config", str(config)], env=env,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def test_two_node_run_killed_after_a_checkpoint_resumes_to_the_same_weights(
    reference_run, tmp_path_factory, model_dir, samples
) -> None:
    tmp = reference_run.parent
    config = write_config(tmp, model_dir, samples, "killed")
    run = tmp / "killed"
    nodes = launch_nodes(config, free_port(), tmp / "killed.log")
    latest = run / "checkpoints" / "latest"
    deadline = time.monotonic() + 400
    while not latest.is_file():
        assert time.monotonic() < deadline, "no checkpoint"
        assert all(p.poll() is None for p in nodes), (tmp / "killed.log.0").read_text()[-4000:]
        time.sleep(0.02)
    # Kill every process of both nodes at once, as losing the nodes would: torchrun's workers
    # run in sessions of their own, so they are collected from the process tree first.
    workers = [child for p in nodes for child in psutil.Process(p.pid).children(recursive=True)]
    for proc in [*nodes, *workers]:
        proc.send_signal(signal.SIGKILL)
    assert [p.wait() for p in nodes] == [-signal.SIGKILL] * 2
    psutil.wait_procs(workers, timeout=30)
    assert not (run / "final").exists()

    nodes = launch_nodes(config, free_port(), tmp / "resumed.log")
    for index, proc in enumerate(nodes):
        assert proc.wait(timeout=400) == 0, (tmp / f"resumed.log.{index}").read_text()[-4000:]
    log = (tmp / "resumed.log.0").read_text()
    resumed_at = int(re.search(r"resumed from checkpoint at step (\d+)", log).group(1))
    total = int(re.search(r"; (\d+) steps", log).group(1))
    reference_steps = len((reference_run / "metrics.jsonl").read_text().splitlines())
    assert resumed_at < total == reference_steps  # the resumed run trained steps of its own

    expected, resumed = final_fp32_weights(reference_run), final_fp32_weights(run)
    assert expected.keys() == resumed.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), name
    # ...and training moved them: the comparison is not between two untouched models.
    initial = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    assert any(not torch.equal(initial[n], t) for n, t in expected.items() if n in initial)
