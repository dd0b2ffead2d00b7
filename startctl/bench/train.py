"""`startctl bench train`: the trainer's throughput, packing efficiency and (on a GPU) MFU.

Data: episode records, converted by the same converter training uses. The newest
`runs/demo-*/episodes.jsonl` that `startctl demo` recorded, or the file named by
`START_BENCH_TRAIN_EPISODES`; where neither exists, episodes made from the micro model's
synthetic traces (`training.demo_episodes`). The model is the micro model
(`START_BENCH_TRAIN_MODEL` names another). Packing efficiency (floor: 95% non-padding)
is measured on that data at the micro config's packing length, against the baseline of
the same samples unpacked in padded micro batches of 8. Tokens/s comes from a real short
run of `startctl train sft` (DeepSpeed ZeRO-3, one process). MFU needs a GPU (floor: 40%
on an H100 in bf16 for a model of at least 0.5B parameters, here a randomly initialised
Qwen2-architecture model of 0.57B parameters: MFU does not depend on the weights' values); on a CPU it is not
applicable, and `floors_met` depends on packing efficiency alone.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from training.config import load_config
from training.convert import convert_records, read_episode_records
from training.data import Sample, encode, write_samples
from training.demo_episodes import demo_episodes
from training.packing import best_fit_decreasing, packing_efficiency

PACKING_FLOOR = 0.95
SHORT_RUN_SAMPLES = 96  # about 5 steps of 2 packed sequences: long enough for a steady median
MFU_FLOOR = 0.40


def episode_records(console: Console) -> tuple[list[dict], str]:
    named = os.environ.get("START_BENCH_TRAIN_EPISODES")
    recorded = sorted(Path("runs").glob("demo-*/episodes.jsonl"), key=lambda p: p.stat().st_mtime)
    path = Path(named) if named else (recorded[-1] if recorded else None)
    if path is not None:
        return list(read_episode_records(path)), str(path)
    console.print("no recorded episodes (run `startctl demo`): using episodes from the micro corpus")
    return demo_episodes(256, seed=7), "micro corpus (training.demo_episodes, 256 episodes)"


def padded_efficiency(lengths: list[int], rows: int, seed: int) -> float:
    """The baseline: one sample per row, micro batches of `rows` padded to their longest."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    batches = [order[i : i + rows] for i in range(0, len(order), rows)]
    return sum(lengths) / sum(len(b) * max(lengths[i] for i in b) for b in batches)


def gpu_model(tmp: Path, tokenizer_dir: str) -> str:
    """A Qwen2-shaped model of 0.57B parameters, randomly initialised, in bf16 (for MFU)."""
    config = Qwen2Config(hidden_size=1024, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=16,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                         tie_word_embeddings=True)
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp / "qwen2-0.5b")
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp / "qwen2-0.5b")
    return str(tmp / "qwen2-0.5b")


def short_run(console: Console, tmp: Path, samples: list[Sample], model: str, gpu: bool) -> list[dict]:
    """A few real optimizer steps through `startctl train sft`; its per-step metrics."""
    data = tmp / "samples.jsonl"
    write_samples(samples[:SHORT_RUN_SAMPLES], data)
    overrides = {"model": model, "data": [str(data)], "output_dir": str(tmp / "run"), "epochs": 1,
                 "save_every": 10_000, "global_batch": 2, "micro_batch": 1}
    if gpu:
        overrides |= {"model": gpu_model(tmp, model), "pack_len": 8192, "max_seq_len": 8192,
                      "precision": "bf16", "global_batch": 8}
    sets = [f"--set={k}={json.dumps(v)}" for k, v in overrides.items()]
    cmd = [sys.executable, "-m", "startctl", "train", "sft", "--config", "micro", "--nproc", "1", *sets]
    with console.status("training a few steps (startctl train sft)..."):
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"training run failed:\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]


def run(console: Console) -> dict:
    gpu = torch.cuda.is_available()
    cfg = load_config("micro")
    model = os.environ.get("START_BENCH_TRAIN_MODEL", cfg.model)
    records, source = episode_records(console)
    samples, skipped = convert_records(records)
    tokenizer = AutoTokenizer.from_pretrained(model)
    lengths = [len(encode(s, tokenizer, cfg.end_of_turn, cfg.max_seq_len)) for s in samples]
    packed = packing_efficiency(lengths, best_fit_decreasing(lengths, cfg.pack_len, random.Random(0)))
    padded = padded_efficiency(lengths, rows=8, seed=0)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        steps = short_run(console, Path(tmp), samples, model, gpu)
    # The first step includes warm-up (allocations, lazy init): report the median of the rest.
    timed = steps[1:] or steps
    tokens_per_s = statistics.median(s["train/tokens_per_s"] for s in timed)
    mfus = [s["train/mfu"] for s in timed if s["train/mfu"] is not None]
    mfu = statistics.median(mfus) if mfus else None

    figures = {
        "data": source,
        "samples": len(samples),
        "episodes_skipped": skipped,
        "pack_len": cfg.pack_len,
        "packing_efficiency": packed,
        "padded_baseline_efficiency": padded,
        "tokens_per_s": tokens_per_s,
        "steps_timed": len(timed),
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "mfu": mfu,
    }
    floors = [packed >= PACKING_FLOOR]
    if gpu:
        floors.append(mfu is not None and mfu >= MFU_FLOOR)
    figures["floors_met"] = all(floors)

    table = Table(title=f"bench train: {source}")
    for column in ("figure", "value", "floor / baseline"):
        table.add_column(column)
    table.add_row("packing efficiency", f"{packed:.1%}", f">= {PACKING_FLOOR:.0%}; unpacked, padded x8: {padded:.1%}")
    table.add_row("tokens/s (median step)", f"{tokens_per_s:,.0f}", figures["device"])
    table.add_row("MFU", "n/a on CPU" if mfu is None else f"{mfu:.1%}", f">= {MFU_FLOOR:.0%} on a GPU, 0.5B model")
    table.add_row("floors met", str(figures["floors_met"]), "CPU: packing only" if not gpu else "packing and MFU")
    console.print(table)
    return figures
