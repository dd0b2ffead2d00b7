"""Build the micro model that ships with the embedded default: tokenizer, training, export.

    python -m training.micro.build --out models/start-micro
    python -m training.micro.build --corpus base --out models/micro-base --data data/micro-base

On 2 CPU cores this takes about ten to fifteen minutes (the base model: about thirty). It
trains, from scratch and with fixed seeds, a Qwen2-architecture causal LM of a few million
parameters on a synthetic corpus (`training.micro.corpus`, hint-following traces, for the
shipped demo model; `training.micro.base_corpus` for the recipe's base model, which never
saw a hint), and writes a directory that both transformers and
vLLM's CPU build load: config, bf16 safetensors, a byte-level BPE tokenizer with a
Qwen-style chat template. It also writes the demo and eval problem sets, and
`manifest.json`: the command, the seed and the whole config, the versions of the libraries
whose numerics shape the weights, and every file's sha256. The same command on the same
versions gives the same bytes (tests/training/test_micro_build.py builds a tiny model twice).

Reads top to bottom: settings, tokenizer, data, model, one training loop, export.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import platform
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from services.common.text_contract import END_THINK, OUTPUT_FENCE, PYTHON_FENCE, START_THINK
from training.micro.base_corpus import make_base_corpus
from training.micro.corpus import CHAT_TEMPLATE, EOS, IM_END, IM_START, Segment, make_corpus
from training.micro.problems import make_problems, write_jsonl

# Qwen2's pre-tokenizer split: words keep one leading non-letter, every digit stands
# alone (so numbers are copied digit by digit), punctuation takes its trailing newlines.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
IGNORE = -100  # label of tokens that carry no loss


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    # hint: the shipped model's corpus (hint-following traces, `training.micro.corpus`);
    # base: the micro recipe's base model, which never saw a hint (`training.micro.base_corpus`).
    corpus: str = "hint"
    easy_share: float = 0.45  # base only: chance of an easy draw, in the families that have them
    train_problems: int = 12_000  # 2,000 per family: near what the smallest family holds
    traces_per_problem: int = 2  # each drawn with its own trace kind and wording
    bpe_vocab: int = 1024  # byte-level BPE, before the 4 added tokens
    # Model: head_dim 64, because vLLM's CPU attention backend refuses 16. What the model
    # must learn is to copy numbers digit by digit (question -> code, output -> answer);
    # within ten CPU minutes twice the steps of a 2-layer model beat a 4-layer one, and
    # every head gets its own keys (no grouped-query sharing).
    hidden_size: int = 256
    intermediate_size: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 4
    max_positions: int = 2048
    # Optimisation: about 0.2 s a step on 2 idle cores.
    steps: int = 2400
    batch_size: int = 16
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup_fraction: float = 0.03  # the paper's schedule shape: cosine, 3% warmup
    weight_decay: float = 0.1
    threads: int = 2
    log_every: int = 50


# The base model has more to learn than the shipped one (its own reasoning, easy rules,
# up to eight calls, any sentence before a block): more layers and steps.
BASE_DEFAULTS = {"num_layers": 4, "steps": 3600}


def build_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    # Single tokens that are not special: they must survive detokenization, so that
    # stop strings such as "</think>" match the text.
    tok.add_tokens([AddedToken(t, normalized=False) for t in (START_THINK, END_THINK, PYTHON_FENCE, OUTPUT_FENCE)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=EOS,
        additional_special_tokens=[IM_START, IM_END],
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out: Path) -> None:
    """tokenizer.json plus a tokenizer_config.json that transformers 4 and 5 (and so vLLM)
    read alike, with the chat template inside it rather than in a separate file."""
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "pad_token": EOS,
        "additional_special_tokens": [IM_START, IM_END],
        "model_max_length": tokenizer.model_max_length,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def encode_trace(tokenizer: PreTrainedTokenizerFast, trace: list[Segment]) -> tuple[list[int], list[int]]:
    """Token ids and labels of one trace. The whole text is tokenized at once, as the
    platform re-tokenizes it at every step; a token carries loss when it starts in a
    trained segment."""
    text, trained = "", []
    for seg in trace:
        trained.extend([seg.trained] * len(seg.text))
        text += seg.text
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    labels = [t if trained[start] else IGNORE for t, (start, _) in zip(enc.input_ids, enc.offset_mapping, strict=True)]
    return enc.input_ids, labels


def batches(data: list[tuple[list[int], list[int]]], cfg: BuildConfig, pad_id: int):
    """Endless batches of traces of similar length (little padding), in random order."""
    rng = random.Random(cfg.seed)
    by_length = sorted(data, key=lambda pair: len(pair[0]))
    groups = [by_length[i : i + cfg.batch_size] for i in range(0, len(data) - cfg.batch_size + 1, cfg.batch_size)]
    while True:
        rng.shuffle(groups)
        for group in groups:
            width = max(len(ids) for ids, _ in group)
            ids = torch.full((len(group), width), pad_id)
            labels = torch.full((len(group), width), IGNORE)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for row, (x, y) in enumerate(group):
                ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
            yield ids, labels, mask


def lr_at(step: int, cfg: BuildConfig) -> float:
    warmup = max(1, int(cfg.warmup_fraction * cfg.steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


MANIFEST = "manifest.json"
# Libraries whose code decides the bytes: training numerics, tokenizer training, export.
LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(out: Path, cfg: BuildConfig, command: str | None) -> dict:
    """What the weights are and how to make them again, beside them."""
    manifest = {
        "command": command,
        "seed": cfg.seed,
        "config": asdict(cfg),
        "python": platform.python_version(),
        "libraries": {name: importlib.metadata.version(name) for name in LIBRARIES},
        "sha256": {
            path.name: sha256(path)
            for path in sorted(out.iterdir())
            if path.is_file() and path.name not in (MANIFEST, "README.md")
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


RECIPE_TRAIN_PROBLEMS = 128


def training_corpus(data_dir: Path, cfg: BuildConfig) -> list[list[Segment]]:
    """The training traces; writes the held-out problem sets into `data_dir`:
    demo and eval, and for the base model eval in wordings it never saw and the recipe's
    training problems."""
    if cfg.corpus == "hint":
        test = make_problems(80, seed=cfg.seed, split="test")
        train = make_problems(cfg.train_problems, seed=cfg.seed, split="train")
        corpus = make_corpus(train * cfg.traces_per_problem, seed=cfg.seed)
    elif cfg.corpus == "base":
        test = make_problems(80, seed=cfg.seed, split="test", wordings="varied", easy_share=cfg.easy_share)
        held_out = make_problems(64, seed=cfg.seed + 1, split="test", wordings="held-out", easy_share=cfg.easy_share)
        write_jsonl(held_out, data_dir / "eval-held-out-wordings.jsonl")
        # The recipe's training problems (`startctl demo --full`): a new draw of the split the
        # base model trained on, as START's problems came from sets QwQ may have seen.
        recipe_train = make_problems(
            RECIPE_TRAIN_PROBLEMS, seed=cfg.seed + 2, split="train", wordings="varied", easy_share=cfg.easy_share
        )
        write_jsonl(recipe_train, data_dir / "train.jsonl")
        train = make_problems(
            cfg.train_problems, seed=cfg.seed, split="train", wordings="varied", easy_share=cfg.easy_share
        )
        corpus = make_base_corpus(train * cfg.traces_per_problem, seed=cfg.seed)
    else:
        raise ValueError(f"corpus must be 'hint' or 'base', not {cfg.corpus!r}")
    write_jsonl(test[:64], data_dir / "eval.jsonl")
    write_jsonl(test[64:], data_dir / "demo.jsonl")
    return corpus


def build(out: Path, data_dir: Path, cfg: BuildConfig, command: str | None = None) -> dict:
    """Train and export the model into `out`; returns its manifest. `command`: how it was
    called, for the manifest (None when called from Python: the config says it all)."""
    started = time.monotonic()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)

    corpus = training_corpus(data_dir, cfg)
    tokenizer = build_tokenizer(["".join(s.text for s in trace) for trace in corpus[:4000]], cfg.bpe_vocab)
    data = [encode_trace(tokenizer, trace) for trace in corpus]
    n_tokens = sum(len(ids) for ids, _ in data)
    print(f"tokenizer: {len(tokenizer)} tokens; corpus: {len(data)} traces, {n_tokens} tokens")

    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=im_end,
        pad_token_id=eos,
    )
    model = Qwen2ForCausalLM(config)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    model.train()
    stream = batches(data, cfg, pad_id=eos)
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        ids, labels, mask = next(stream)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            elapsed = time.monotonic() - started
            print(f"step {step:5d}  loss {loss.item():.4f}  lr {lr_at(step, cfg):.2e}  {elapsed:.0f}s")

    model.eval()
    model.to(torch.bfloat16).save_pretrained(out)
    GenerationConfig(eos_token_id=[im_end, eos], pad_token_id=eos, do_sample=False).save_pretrained(out)
    save_tokenizer(tokenizer, out)
    manifest = write_manifest(out, cfg, command)
    print(f"saved {out} in {time.monotonic() - started:.0f}s; weights sha256 {manifest['sha256']['model.safetensors']}")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/start-micro"))
    parser.add_argument(
        "--data",
        type=Path,
        help="where the demo and eval sets go (data/micro for the shipped model, else beside --out)",
    )
    parser.add_argument("--corpus", choices=["hint", "base"], default=BuildConfig.corpus)
    parser.add_argument("--seed", type=int, default=BuildConfig.seed)
    parser.add_argument("--steps", type=int, help=f"default {BuildConfig.steps}; base: {BASE_DEFAULTS['steps']}")
    parser.add_argument(
        "--layers", type=int, help=f"default {BuildConfig.num_layers}; base: {BASE_DEFAULTS['num_layers']}"
    )
    parser.add_argument("--threads", type=int, default=BuildConfig.threads)
    args = parser.parse_args()
    command = shlex.join(["python", "-m", "training.micro.build", *sys.argv[1:]])
    cfg = BuildConfig(corpus=args.corpus, seed=args.seed, threads=args.threads)
    if args.corpus == "base":
        cfg = replace(cfg, **BASE_DEFAULTS)
    given = {"steps": args.steps, "num_layers": args.layers}
    cfg = replace(cfg, **{key: value for key, value in given.items() if value is not None})
    data = args.data or (Path("data/micro") if args.corpus == "hint" else args.out.parent / "data")
    build(args.out, data, cfg, command)


if __name__ == "__main__":
    main()
