"""The typed training config: the paper's SFT recipe as defaults, small runs as named files.

`TrainConfig()` *is* the recipe of START-0 and START (lr 7e-6, global batch 128, cosine
with 3% warmup, 16k max sequence, packed to 32k, 3 epochs, ZeRO-3, bf16). A run is a YAML
file under `training/configs/` (or anywhere) that overrides only what differs; `--config
micro` names `training/configs/micro.yaml`. The launcher, the trainer and `startctl train`
all read it through `load_config`, so a config is checked once, before any process starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.settings import parse_overrides

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # What to train, on what, and where the run's files go.
    model: str = Field(..., description="Hugging Face model directory (or hub id where a hub is reachable).")
    data: list[str] = Field(..., min_length=1, description="JSONL files in the training format (docs/training.md).")
    output_dir: str = Field("runs/sft", description="Checkpoints, TensorBoard logs and the final model.")
    end_of_turn: str = Field("<|im_end|>", description="Appended (with loss) when a response lacks it.")

    # The paper's recipe.
    lr: float = Field(7e-6, gt=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Cosine floor as a fraction of lr.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    epochs: int = Field(3, ge=1)
    global_batch: int = Field(128, ge=1, description="Packed sequences per optimizer step, at any world size.")
    micro_batch: int = Field(1, ge=1, description="Packed sequences per rank per forward pass.")
    max_seq_len: int = Field(16384, ge=16, description="A sample longer than this is truncated.")
    pack_len: int = Field(32768, ge=16, description="Samples are packed into sequences of at most this.")
    packing: bool = Field(True, description="Off: one sample per sequence, batches padded (for comparison).")
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 42
    loss_on_hints: bool = Field(
        False, description="Train on hint tokens as if the model wrote them (the paper: no loss on hints)."
    )
    loss_on_hint_fence: bool = Field(
        False, description="Train on the python fence a hint ends with (only; the rest of the hint has none)."
    )

    # Systems.
    deepspeed_config: str = Field(
        str(CONFIG_DIR / "zero3.json"), description="Base DeepSpeed config; batch sizes, precision, stage set here."
    )
    zero_stage: Literal[0, 1, 2, 3] = 3
    offload_optimizer: bool = Field(False, description="ZeRO-Offload of optimizer state to host memory.")
    offload_params: bool = Field(False, description="ZeRO-Infinity offload of parameters (stage 3).")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 where the hardware has it.")
    gradient_checkpointing: bool = True
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = Field(
        "auto", description="auto: flash-attention varlen on GPU when installed, else sdpa."
    )
    peak_tflops: float | None = Field(None, gt=0, description="Per-device peak for MFU; None: from the GPU name.")

    # Bookkeeping.
    save_every: int = Field(200, ge=1, description="Checkpoint every N optimizer steps (and at the end).")
    keep_checkpoints: int = Field(2, ge=1, description="Older checkpoints are deleted.")
    log_every: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _lengths(self) -> TrainConfig:
        if self.max_seq_len > self.pack_len:
            raise ValueError(f"max_seq_len {self.max_seq_len} exceeds pack_len {self.pack_len}")
        return self

    def accumulation(self, world_size: int) -> int:
        """Gradient accumulation steps that hold the global batch at any world size."""
        per_pass = self.micro_batch * world_size
        if self.global_batch % per_pass:
            raise ValueError(
                f"global_batch {self.global_batch} is not a multiple of micro_batch {self.micro_batch}"
                f" x world size {world_size}"
            )
        return self.global_batch // per_pass


def resolve_config_path(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of one in training/configs (`micro`, `start`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"config {name_or_path!r} is neither a file nor one of: {names}")


def parse_config_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` flags with YAML values (`data=[a.jsonl, b.jsonl]`, `epochs=1`, `packing=false`)."""
    return {key: yaml.safe_load(value) for key, value in parse_overrides(pairs).items()}


def load_config(name_or_path: str, overrides: dict | None = None) -> TrainConfig:
    """The config of a file, with overrides on top; relative data/model paths stay as written."""
    raw = yaml.safe_load(resolve_config_path(name_or_path).read_text()) or {}
    return TrainConfig(**{**raw, **(overrides or {})})
