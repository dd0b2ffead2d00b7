"""The micro model is reproducible: its build writes a manifest that names every file by
sha256, and the same config gives the same bytes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from training.micro.build import MANIFEST, BuildConfig, build, sha256, training_corpus

ROOT = Path(__file__).resolve().parents[2]
# The shipped model of the demo, and the micro recipe's base model.
SHIPPED = (ROOT / "models" / "start-micro", ROOT / "models" / "micro-base")
# A model of one layer and one head, three steps on a few dozen traces: seconds, yet
# every part of a real build (problems, corpus, tokenizer training, AdamW, export).
TINY = BuildConfig(
    train_problems=24,
    traces_per_problem=1,
    bpe_vocab=300,
    hidden_size=64,
    intermediate_size=128,
    num_layers=1,
    num_heads=1,
    num_kv_heads=1,
    steps=3,
    batch_size=4,
    log_every=1,
)


@pytest.mark.parametrize("corpus", ["hint", "base"])
def test_a_tiny_build_twice_gives_the_same_bytes_and_a_manifest_that_names_them(tmp_path: Path, corpus: str) -> None:
    tiny = replace(TINY, corpus=corpus)
    first = build(tmp_path / "a", tmp_path / "a-data", tiny)
    second = build(tmp_path / "b", tmp_path / "b-data", tiny)

    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(first["sha256"])
    assert first["sha256"] == second["sha256"]
    for name, digest in first["sha256"].items():
        assert sha256(tmp_path / "a" / name) == digest
    assert json.loads((tmp_path / "a" / MANIFEST).read_text()) == first
    assert first["seed"] == 0 and first["config"]["steps"] == 3 and first["config"]["corpus"] == corpus
    assert first["libraries"]["torch"] == torch.__version__

    if corpus == "hint":  # the digest follows the weights: another seed, other bytes
        other = build(tmp_path / "c", tmp_path / "c-data", replace(tiny, seed=1))
        assert other["sha256"]["model.safetensors"] != first["sha256"]["model.safetensors"]


@pytest.mark.parametrize("model", SHIPPED, ids=lambda path: path.name)
def test_the_shipped_weights_are_the_ones_their_manifest_names(model: Path) -> None:
    manifest = json.loads((model / MANIFEST).read_text())
    assert manifest["command"].startswith("python -m training.micro.build")
    assert set(manifest["sha256"]) == {p.name for p in model.iterdir() if p.name not in (MANIFEST, "README.md")}
    for name, digest in manifest["sha256"].items():
        assert sha256(model / name) == digest, f"{name} is not the file the manifest names: rebuild or re-manifest"


def test_the_base_models_problem_sets_are_the_ones_its_build_draws(tmp_path: Path) -> None:
    """data/micro-base is what `build --corpus base` writes: held out from its training
    problems by the split, and in wordings it never saw for eval-held-out-wordings; train.jsonl
    is the recipe's training problems."""
    config = BuildConfig(**json.loads((ROOT / "models" / "micro-base" / MANIFEST).read_text())["config"])
    training_corpus(tmp_path, replace(config, train_problems=6))
    for name in ("eval.jsonl", "eval-held-out-wordings.jsonl", "demo.jsonl", "train.jsonl"):
        assert (tmp_path / name).read_text() == (ROOT / "data" / "micro-base" / name).read_text()
