"""The one launcher: rendezvous from the environment, then torchrun starts one trainer per device.

On Kubernetes every pod of the Indexed Job runs `startctl train launch --config FILE`;
the Job gives each pod its node rank (`JOB_COMPLETION_INDEX`) and the chart (or `startctl
train submit`) sets `START_TRAIN_NNODES`, `START_TRAIN_NPROC_PER_NODE`,
`START_TRAIN_MASTER_ADDR` (pod 0 through the headless Service) and
`START_TRAIN_MASTER_PORT`. Locally, `startctl train sft` is the same launch with one node,
and two `startctl train launch --nnodes 2 --node-rank {0,1}` on loopback are a two-node run.
torchrun's static rendezvous does the rest: it sets RANK / LOCAL_RANK / WORLD_SIZE for
DeepSpeed and stops every worker when one fails.
"""

from __future__ import annotations

import os

import torch
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Rendezvous(BaseSettings):
    """Where this node sits in the run; from the environment, flags on top."""

    model_config = SettingsConfigDict(env_prefix="START_TRAIN_", extra="ignore")

    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(
        0, ge=0, validation_alias=AliasChoices("JOB_COMPLETION_INDEX", "START_TRAIN_NODE_RANK", "node_rank")
    )
    nproc_per_node: int = Field(0, ge=0, description="Trainer processes per node; 0: one per GPU, or 1 on CPU.")
    master_addr: str = "127.0.0.1"
    master_port: int = Field(29500, ge=1, le=65535)

    def processes(self) -> int:
        if self.nproc_per_node:
            return self.nproc_per_node
        return torch.cuda.device_count() or 1


def torchrun_args(rdzv: Rendezvous, config: str, overrides: list[str]) -> list[str]:
    if rdzv.node_rank >= rdzv.nnodes:
        raise ValueError(f"node rank {rdzv.node_rank} is not below the node count {rdzv.nnodes}")
    args = [
        f"--nnodes={rdzv.nnodes}", f"--node_rank={rdzv.node_rank}", f"--nproc_per_node={rdzv.processes()}",
        f"--master_addr={rdzv.master_addr}", f"--master_port={rdzv.master_port}",
        "-m", "training.sft", "--config", config,
    ]
    for pair in overrides:
        args += ["--set", pair]
    return args


def launch(rdzv: Rendezvous, config: str, overrides: list[str]) -> None:
    """Run this node's share of the training; returns when every local worker is done."""
    from torch.distributed.run import main as torchrun

    if not torch.cuda.is_available():
        # DeepSpeed picks its accelerator at import; without a GPU it is the CPU one (gloo).
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    torchrun(torchrun_args(rdzv, config, overrides))
