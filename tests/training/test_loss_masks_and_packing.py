"""Hint and tool-output tokens carry exactly no gradient, yet stay in the context; packing
changes nothing but speed (the same loss as one sample per row)."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM

from tests.training.episodes import episode_record
from training.convert import convert_records
from training.data import IGNORE_INDEX, encode
from training.demo_episodes import demo_episodes
from training.loss import summed_loss
from training.packing import best_fit_decreasing, collate, make_plan, packing_efficiency

END = "<|im_end|>"


@pytest.fixture(scope="module")
def model(model_dir):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")


def test_hint_and_tool_output_tokens_contribute_exactly_zero_gradient(model, tokenizer) -> None:
    from training.convert import episode_to_sample

    encoded = encode(episode_to_sample(episode_record()), tokenizer, END, max_len=4096)
    batch = collate([[encoded]], pad_id=tokenizer.pad_token_id)
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits
    logits.retain_grad()
    loss = torch.nn.functional.cross_entropy(
        logits.view(-1, logits.shape[-1]), batch.shift_labels.view(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    embeddings = model.get_input_embeddings()
    inputs = embeddings(batch.input_ids).detach().requires_grad_(True)
    loss.backward()
    grad_per_position = logits.grad[0].abs().sum(-1)
    predicts_trained = batch.shift_labels[0] != IGNORE_INDEX
    # Positions whose next token is prompt, hint or tool output send no gradient at all.
    assert torch.all(grad_per_position[~predicts_trained] == 0)
    assert torch.all(grad_per_position[predicts_trained] > 0)

    # ...but hint and output tokens are attended to: the loss depends on their inputs.
    model.zero_grad()
    out = model(inputs_embeds=inputs, position_ids=batch.position_ids).logits
    torch.nn.functional.cross_entropy(
        out.view(-1, out.shape[-1]), batch.shift_labels.view(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    ).backward()
    untrained_inputs = torch.tensor(encoded.labels) == IGNORE_INDEX
    untrained_inputs[: len(tokenizer(episode_record()["spans"][0]["text"]).input_ids)] = False  # past the prompt
    assert inputs.grad[0][untrained_inputs].abs().sum(-1).min() > 0


def test_packed_and_unpacked_training_give_the_same_loss(model, tokenizer, samples) -> None:
    encoded = [encode(s, tokenizer, END, max_len=1024) for s in samples[:6]]
    pad = tokenizer.pad_token_id
    tokens = collate([encoded], pad).loss_tokens
    assert tokens == collate([[e] for e in encoded], pad).loss_tokens == sum(e.loss_tokens for e in encoded)
    with torch.no_grad():
        packed = summed_loss(model, collate([encoded], pad)) / tokens
        unpacked = summed_loss(model, collate([[e] for e in encoded], pad)) / tokens
        # The control: one long sequence whose positions do not restart lets samples attend
        # to each other, and the loss moves.
        naive = collate([encoded], pad)
        naive_pos = torch.arange(naive.input_ids.shape[1]).unsqueeze(0)
        logits = model(input_ids=naive.input_ids, position_ids=naive_pos).logits
        leaked = torch.nn.functional.cross_entropy(
            logits.view(-1, logits.shape[-1]), naive.shift_labels.view(-1), ignore_index=IGNORE_INDEX, reduction="sum"
        ) / tokens
    assert packed.item() == pytest.approx(unpacked.item(), rel=1e-5)
    assert abs(leaked.item() - unpacked.item()) > 1e-3


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 512), min_size=1, max_size=200),
    seed=st.integers(0, 10_000),
)
def test_packing_puts_every_sample_in_exactly_one_sequence_within_the_pack_length(lengths, seed) -> None:
    bins = best_fit_decreasing(lengths, 512, random.Random(seed))
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    # No waste a better fit would avoid: at most one sequence is half empty (else the later
    # one's samples would have fitted into the earlier one).
    assert sum(sum(lengths[i] for i in b) <= 256 for b in bins) <= 1


@pytest.mark.parametrize("world_size", [1, 2, 4, 8])
def test_global_batch_is_held_at_any_world_size_and_ranks_share_it_disjointly(world_size) -> None:
    lengths = [100 + (i * 37) % 300 for i in range(400)]
    plan = make_plan(lengths, pack_len=1024, packing=True, epochs=2, seed=3, global_batch=16, micro_batch=2,
                     world_size=world_size)
    assert plan.accumulation * plan.micro_batch * world_size == 16
    for step in range(plan.steps):
        shares = [seq for rank in range(world_size) for mb in plan.micro_batches(step, rank) for seq in mb]
        assert sorted(map(tuple, shares)) == sorted(map(tuple, plan.step_sequences(step)))
    # Every epoch trains on every sample once.
    assert sorted(i for seq in plan.sequences for i in seq) == sorted(list(range(400)) * 2)


def test_packing_fills_at_least_95_percent_of_the_packed_length_on_episode_data(tokenizer) -> None:
    # Enough episodes that the one partly filled last sequence is a small share, as in a real run.
    samples, _ = convert_records(demo_episodes(400, seed=1))
    lengths = [len(encode(s, tokenizer, END, max_len=2048)) for s in samples]
    bins = best_fit_decreasing(lengths, 2048, random.Random(0))
    assert packing_efficiency(lengths, bins) >= 0.95
