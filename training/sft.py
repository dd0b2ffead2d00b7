"""START SFT: the supervised fine-tune that makes START-0 (on Hint-RFT data) and START (on RFT data).

One process per device, started by the launcher (`training.launcher`, which is what
`startctl train sft` and the Kubernetes Job's pods run), or by hand:

    torchrun --nproc_per_node 8 -m training.sft --config start
    DS_ACCELERATOR=cpu torchrun --nproc_per_node 2 -m training.sft --config micro

Reads as the recipe: the typed config (lr 7e-6, global batch 128, cosine with 3% warmup,
3 epochs, 16k samples packed to 32k, ZeRO-3, bf16), then data (format -> tokens with
span loss masks -> packed plan), model, DeepSpeed, one loop, the final model. Only rank 0
logs and writes metrics; every rank takes part in checkpoints and the final gather.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import deepspeed
import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.integrations import HfDeepSpeedConfig

from training import checkpoint
from training.config import TrainConfig, load_config, parse_config_overrides
from training.data import LossPolicy, encode, read_samples
from training.ds_config import deepspeed_config, resolve_precision
from training.library_warnings import quiet_library_deprecations
from training.loss import summed_loss
from training.metrics import Board, device_peak_tflops, mfu, step_flops
from training.packing import collate, make_plan, packing_efficiency
from training.schedule import warmup_cosine


def attention_implementation(cfg: TrainConfig) -> str:
    """flash-attention (varlen over packed position ids) on a GPU that has it, else sdpa."""
    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) the whole fine-tune; returns the final model's directory."""
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    lead = rank == 0
    console = Console(stderr=True, quiet=not lead, soft_wrap=True)  # log lines stay whole
    seed_everything(cfg.seed)
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"

    # Data: samples -> tokens with span loss masks -> a fixed plan of packed sequences.
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    loss = LossPolicy(hints=cfg.loss_on_hints, hint_fence=cfg.loss_on_hint_fence)
    encoded = [encode(s, tokenizer, cfg.end_of_turn, cfg.max_seq_len, loss) for s in read_samples(cfg.data)]
    lengths = [len(e) for e in encoded]
    plan = make_plan(
        lengths, pack_len=cfg.pack_len, packing=cfg.packing, epochs=cfg.epochs, seed=cfg.seed,
        global_batch=cfg.global_batch, micro_batch=cfg.micro_batch, world_size=world,
    )
    if plan.steps == 0:
        raise ValueError(f"{len(plan.sequences)} sequences make no step of global batch {cfg.global_batch}")
    efficiency = packing_efficiency(lengths, plan.sequences)
    console.print(
        f"data: {len(encoded)} samples, {sum(lengths)} tokens, {len(plan.sequences)} sequences over "
        f"{cfg.epochs} epochs, packing efficiency {efficiency:.1%}; global batch {cfg.global_batch} = micro "
        f"{cfg.micro_batch} x accumulation {plan.accumulation} x ranks {world}; {plan.steps} steps"
    )

    # Model under ZeRO-3: HfDeepSpeedConfig must exist (and stay alive) before from_pretrained,
    # so that every rank loads only its partition.
    ds_config = deepspeed_config(cfg, world)
    hf_ds = HfDeepSpeedConfig(ds_config) if cfg.zero_stage == 3 else None  # noqa: F841 - keeps the weakref alive
    precision = resolve_precision(cfg)
    model = AutoModelForCausalLM.from_pretrained(
        cfg.model,
        dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
        attn_implementation=attention_implementation(cfg),
    )
    # The final model keeps the base model's dtype (bf16 for the micro model), whatever we train in.
    save_dtype = AutoConfig.from_pretrained(cfg.model).dtype or torch.bfloat16
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    n_params = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
    # No weight decay on biases and norms; under ZeRO-3 a parameter's real shape is ds_shape.
    matrices = [len(getattr(p, "ds_shape", p.shape)) >= 2 for p in model.parameters()]
    decay = [p for p, is_matrix in zip(model.parameters(), matrices, strict=True) if is_matrix]
    no_decay = [p for p, is_matrix in zip(model.parameters(), matrices, strict=True) if not is_matrix]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.adam_betas,
    )
    # Warmup counts from step 1, so step 1 trains too (training/schedule.py).
    scheduler = warmup_cosine(optimizer, cfg.warmup_ratio, plan.steps, cfg.min_lr_ratio)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config)
    start = checkpoint.resume(engine, ckpt_dir)
    if start:
        console.print(f"resumed from checkpoint at step {start}")

    board = Board(out / "tensorboard", enabled=lead)
    metrics_file = open(out / "metrics.jsonl", "a") if lead else None  # noqa: SIM115 - closed below
    peak = device_peak_tflops(cfg.peak_tflops)
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    progress = Progress(
        TextColumn("[bold]sft"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(), console=console, disable=not lead,
    )
    engine.train()
    with progress:
        task = progress.add_task("sft", total=plan.steps, completed=start, info="")
        for step in range(start, plan.steps):
            t0 = time.perf_counter()
            # Every rank knows the whole step's plan, so the global count of loss tokens is known
            # without communication; scaling by it makes the gradient the token mean of the
            # global batch (DeepSpeed divides by accumulation steps and by ranks).
            step_seqs = plan.step_sequences(step)
            global_loss_tokens = sum(encoded[i].loss_tokens for seq in step_seqs for i in seq)
            scale = plan.accumulation * world / max(1, global_loss_tokens)
            lr = scheduler.get_last_lr()[0]  # the rate this step trains with
            loss_sum = torch.zeros((), dtype=torch.float64)
            tokens, sample_lengths = 0, []
            for rows in plan.micro_batches(step, rank):
                batch = collate([[encoded[i] for i in seq] for seq in rows], pad_id)
                loss = summed_loss(engine, batch)
                engine.backward(loss * scale)
                engine.step()
                loss_sum += loss.detach().double().cpu()
                tokens += batch.tokens
                sample_lengths += batch.sample_lengths
            totals = torch.tensor([loss_sum.item(), tokens, step_flops(n_params, layers, hidden, sample_lengths)],
                                  dtype=torch.float64)
            dist.all_reduce(totals)  # gloo / nccl; a step boundary anyway
            seconds = time.perf_counter() - t0
            figures = {
                "train/loss": totals[0].item() / max(1, global_loss_tokens),
                "train/lr": lr,
                "train/tokens_per_s": totals[1].item() / seconds,
                "train/mfu": mfu(totals[2].item(), seconds, world, peak),
                "train/grad_norm": float(engine.get_global_grad_norm() or 0.0),
            }
            if lead and (step % cfg.log_every == 0 or step == plan.steps - 1):
                board.scalars(step + 1, figures)
                metrics_file.write(json.dumps({"step": step + 1, **figures}) + "\n")
                metrics_file.flush()
            progress.update(task, advance=1, info=f"loss {figures['train/loss']:.4f} lr {figures['train/lr']:.2e}")
            if (step + 1) % cfg.save_every == 0 or step + 1 == plan.steps:
                checkpoint.save(engine, ckpt_dir, step + 1, cfg.keep_checkpoints)

    final = out / "final"
    checkpoint.save_final(engine, model, tokenizer, final, save_dtype)
    board.close()
    if metrics_file is not None:
        metrics_file.close()
    console.print(f"final model: {final}")
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="START SFT (one process per device; see the module docstring).")
    parser.add_argument("--config", required=True, help="YAML file, or a name in training/configs.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value over the file.")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, parse_config_overrides(args.overrides))
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    quiet_library_deprecations()  # DeepSpeed's deprecated collectives warn on every step
    train(cfg)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
