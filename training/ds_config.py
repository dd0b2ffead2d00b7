"""The DeepSpeed config of a run: the repository's base file plus what the typed config decides.

Batch sizes are derived (micro batch x accumulation x ranks = global batch) and never
written by hand, so the global batch stays the recipe's at any world size.
"""

from __future__ import annotations

import json

import torch

from training.config import TrainConfig


def resolve_precision(cfg: TrainConfig) -> str:
    """bf16 where the hardware has it (a CUDA device with bf16), else fp32."""
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def deepspeed_config(cfg: TrainConfig, world_size: int) -> dict:
    with open(cfg.deepspeed_config) as fh:
        ds = json.load(fh)
    zero = ds.setdefault("zero_optimization", {})
    zero["stage"] = cfg.zero_stage
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if cfg.offload_params and cfg.zero_stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    ds["train_batch_size"] = cfg.global_batch
    ds["train_micro_batch_size_per_gpu"] = cfg.micro_batch
    ds["gradient_accumulation_steps"] = cfg.accumulation(world_size)
    ds["gradient_clipping"] = cfg.grad_clip
    ds["bf16"] = {"enabled": resolve_precision(cfg) == "bf16"}
    return ds
