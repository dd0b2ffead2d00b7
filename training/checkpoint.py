"""Checkpoints that resume exactly, and the final model in Hugging Face format.

A checkpoint is DeepSpeed's (`engine.save_checkpoint`): partitioned fp32 weights,
optimizer and scheduler state of every rank, plus our client state (the next step) and
each rank's RNG states. The data order needs nothing stored: it is a pure function of the
config and the world size (`training.packing.make_plan`), so the next step number is
where the data resumes. The final model is gathered from the ZeRO-3 partitions and saved
with `save_pretrained` in the base model's dtype: a directory vLLM serves as it is.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from transformers import PreTrainedModel, PreTrainedTokenizerBase

LATEST = "latest"  # DeepSpeed's pointer file to the newest tag


def _rng_path(ckpt_dir: Path, tag: str, rank: int) -> Path:
    return ckpt_dir / tag / f"rng_rank{rank}.pt"


def save(engine, ckpt_dir: Path, next_step: int, keep: int) -> None:  # noqa: ANN001 - DeepSpeedEngine
    tag = f"step-{next_step}"
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    # RNG first: DeepSpeed writes the `latest` pointer last, so a checkpoint it points to is whole.
    _rng_path(ckpt_dir, tag, 0).parent.mkdir(parents=True, exist_ok=True)
    torch.save(rng, _rng_path(ckpt_dir, tag, dist.get_rank()))
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state={"next_step": next_step})
    dist.barrier()
    if dist.get_rank() == 0:
        tags = sorted((p for p in ckpt_dir.glob("step-*") if p.is_dir()), key=lambda p: int(p.name[5:]))
        for old in tags[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def resume(engine, ckpt_dir: Path) -> int:  # noqa: ANN001 - DeepSpeedEngine
    """Load the newest checkpoint if there is one; the step to continue from (0: fresh)."""
    if not (ckpt_dir / LATEST).is_file():
        return 0
    tag = (ckpt_dir / LATEST).read_text().strip()
    path, client = engine.load_checkpoint(
        str(ckpt_dir), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if path is None:
        raise RuntimeError(f"checkpoint {ckpt_dir / tag} could not be loaded")
    rng = torch.load(_rng_path(ckpt_dir, tag, dist.get_rank()), weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(client["next_step"])


def save_final(
    engine, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path, dtype: torch.dtype  # noqa: ANN001
) -> None:
    """Gather the full weights (every rank takes part) and write them on rank 0."""
    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()  # the gather DeepSpeed's own save uses
    else:
        state = engine.module.state_dict()
    if dist.get_rank() == 0:
        state = {k: v.to(dtype) for k, v in state.items()}
        model.config.use_cache = True
        model.save_pretrained(out, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(out)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(out)
    dist.barrier()
