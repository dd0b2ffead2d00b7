"""Throughput and model FLOPs utilisation (MFU), and where the numbers are written.

FLOPs per step follow the usual dense-transformer count (Kaplan; PaLM appendix B):
6 x parameters per token for the matmuls, plus the causal attention scores, 6 x layers x
hidden x L^2 per sample of length L (forward and backward). With packing, attention is
counted per sample, not per packed sequence, because samples do not attend to each other.
Gradient checkpointing's extra forward is not counted: MFU counts useful work only.
"""

from __future__ import annotations

from pathlib import Path

import torch

# Dense bf16 peak per device, TFLOP/s, by the name CUDA reports (no sparsity).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def step_flops(n_params: int, layers: int, hidden: int, sample_lengths: list[int]) -> float:
    tokens = sum(sample_lengths)
    return 6.0 * n_params * tokens + 6.0 * layers * hidden * sum(n * n for n in sample_lengths)


def device_peak_tflops(override: float | None) -> float | None:
    """Per-device peak, or None where MFU is not meaningful (CPU, an unknown GPU)."""
    if override is not None:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)


def mfu(flops: float, seconds: float, devices: int, peak_tflops: float | None) -> float | None:
    if peak_tflops is None or seconds <= 0:
        return None
    return flops / seconds / (devices * peak_tflops * 1e12)


class Board:
    """TensorBoard scalars on rank 0; other ranks write nothing."""

    def __init__(self, log_dir: Path, enabled: bool) -> None:
        self._writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(log_dir))

    def scalars(self, step: int, values: dict[str, float | None]) -> None:
        if self._writer is None:
            return
        for key, value in values.items():
            if value is not None:
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
