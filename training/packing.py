"""Packing: samples -> sequences of at most `pack_len` tokens -> the batches of each step.

Several samples share one sequence; their position ids restart at 0 per sample, and that
is all the model needs to keep them apart: with flash-attention (GPU) transformers turns
restarting position ids into varlen sequence boundaries, and with sdpa / eager (CPU) it
builds the block-diagonal causal mask from them (`masking_utils.find_packed_sequence_
indices`), as long as no 2D attention mask is passed. Labels are shifted here, per
sample, so the last token of one sample never learns to predict the next sample's first.

The plan of a run (which sample goes in which sequence, which sequence in which step and
on which rank) is a pure function of the data, the config's seed and the world size, so a
resumed run finds its place by step number alone.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

import torch

from training.data import IGNORE_INDEX, Encoded


def best_fit_decreasing(lengths: list[int], capacity: int, rng: random.Random) -> list[list[int]]:
    """Indices of samples grouped into bins of at most `capacity` tokens, bins in random order.

    As few bins as best-fit-decreasing finds, then as evenly filled as that many bins allow:
    rows are padded to the longest row of their batch, so a half-empty last bin would cost
    padding in every batch it lands in, while even bins cost almost none."""
    bins = _best_fit(lengths, capacity, rng)
    target = -(-sum(lengths) // len(bins)) if bins else capacity
    while target < capacity:
        even = _best_fit(lengths, max(target, max(lengths)), rng)
        if len(even) <= len(bins):
            bins = even
            break
        target += max(1, target // 200)
    rng.shuffle(bins)
    return bins


def _best_fit(lengths: list[int], capacity: int, rng: random.Random) -> list[list[int]]:
    """Longest first, each into the fullest bin it still fits (O(n log bins)); ties between
    equal lengths fall in a seeded random order so that epochs differ."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: -lengths[i])  # stable: ties keep the shuffled order
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for i in order:
        at = bisect.bisect_left(free, (lengths[i], -1))
        if at == len(free):
            bins.append([i])
            room, b = capacity - lengths[i], len(bins) - 1
        else:
            room, b = free.pop(at)
            bins[b].append(i)
            room -= lengths[i]
        bisect.insort(free, (room, b))
    return bins


@dataclass(frozen=True)
class Plan:
    """Every step's sequences, for every rank: the run's data order, fixed up front."""

    sequences: list[list[int]]  # sample indices of each packed sequence, all epochs in order
    global_batch: int
    micro_batch: int
    world_size: int

    @property
    def steps(self) -> int:
        # A last partial step is dropped: every step sees exactly the global batch.
        return len(self.sequences) // self.global_batch

    @property
    def accumulation(self) -> int:
        return self.global_batch // (self.micro_batch * self.world_size)

    def step_sequences(self, step: int) -> list[list[int]]:
        return self.sequences[step * self.global_batch : (step + 1) * self.global_batch]

    def micro_batches(self, step: int, rank: int) -> list[list[list[int]]]:
        """This rank's micro batches of one step: rank r takes every world_size-th slice."""
        seqs = self.step_sequences(step)
        mb, world = self.micro_batch, self.world_size
        return [
            seqs[(a * world + rank) * mb : (a * world + rank + 1) * mb] for a in range(self.accumulation)
        ]


def make_plan(
    lengths: list[int],
    *,
    pack_len: int,
    packing: bool,
    epochs: int,
    seed: int,
    global_batch: int,
    micro_batch: int,
    world_size: int,
) -> Plan:
    sequences: list[list[int]] = []
    for epoch in range(epochs):
        rng = random.Random(f"{seed}-{epoch}")
        if packing:
            sequences.extend(best_fit_decreasing(lengths, pack_len, rng))
        else:
            order = list(range(len(lengths)))
            rng.shuffle(order)
            sequences.extend([i] for i in order)
    return Plan(sequences, global_batch, micro_batch, world_size)


def packing_efficiency(lengths: list[int], sequences: list[list[int]]) -> float:
    """Real tokens over the tokens computed when every row is padded to the longest packed
    sequence (the worst batch `collate` can form; 1.0: no padding at all)."""
    if not sequences:
        return 0.0
    fills = [sum(lengths[i] for i in seq) for seq in sequences]
    return sum(fills) / (len(fills) * max(fills))


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [rows, width]
    position_ids: torch.Tensor  # [rows, width], restarting at 0 per sample
    shift_labels: torch.Tensor  # [rows, width], the label of the *next* token, or IGNORE_INDEX
    tokens: int  # real (non-padding) tokens
    sample_lengths: list[int]  # for the attention term of the FLOP count

    @property
    def loss_tokens(self) -> int:
        return int((self.shift_labels != IGNORE_INDEX).sum())


def collate(rows: list[list[Encoded]], pad_id: int) -> Batch:
    """Packed rows -> tensors, right-padded to the longest row; padding is its own segment."""
    width = max(sum(len(s) for s in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    shifted = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    lengths: list[int] = []
    for r, row in enumerate(rows):
        at = 0
        for sample in row:
            n = len(sample)
            ids[r, at : at + n] = torch.tensor(sample.input_ids)
            pos[r, at : at + n] = torch.arange(n)
            shifted[r, at : at + n - 1] = torch.tensor(sample.labels[1:])
            at += n
            lengths.append(n)
        pos[r, at:] = torch.arange(width - at)
    return Batch(ids, pos, shifted, sum(lengths), lengths)
