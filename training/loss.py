"""The training loss of one micro batch: summed token cross-entropy over loss-carrying tokens.

Summed, not averaged, so that the trainer can divide by the loss-token count of the whole
global batch: every loss-carrying token then weighs the same, however the samples were
packed, padded or spread over ranks (packed and unpacked training give the same loss).
Logits are taken in fp32 for the softmax, as transformers' own causal-LM loss does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.data import IGNORE_INDEX
from training.packing import Batch


def summed_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Forward the batch (packed: position ids, no 2D mask) and sum the token losses."""
    device = next(model.parameters()).device
    # No KV cache: with one, transformers skips the packed-sequence (block-diagonal) mask.
    logits = model(
        input_ids=batch.input_ids.to(device), position_ids=batch.position_ids.to(device), use_cache=False
    ).logits
    return F.cross_entropy(
        logits.float().view(-1, logits.shape[-1]),
        batch.shift_labels.to(device).view(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
