"""Fixtures of the training tests: the micro model, and samples converted from episode records.

The model is the micro model the project ships (models/start-micro). Where it has not
been built yet, a randomly initialised model of the same architecture family (Qwen2,
head_dim 64) with the micro tokenizer and chat template is made once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from startctl.stack import MICRO_MODEL
from training.convert import convert_records
from training.data import Sample, write_samples
from training.demo_episodes import demo_episodes


def _tiny_qwen2(out: Path) -> Path:
    from training.micro.build import build_tokenizer
    from training.micro.corpus import EOS, IM_END, make_corpus
    from training.micro.problems import make_problems

    corpus = make_corpus(make_problems(300, seed=0, split="train"), seed=0)
    tokenizer = build_tokenizer(["".join(s.text for s in trace) for trace in corpus], 512)
    eos, im_end = tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=eos, eos_token_id=im_end, pad_token_id=eos,
    )
    Qwen2ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    GenerationConfig(eos_token_id=[im_end, eos], pad_token_id=eos).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (MICRO_MODEL / "config.json").is_file():
        return MICRO_MODEL
    return _tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def samples() -> list[Sample]:
    converted, skipped = convert_records(demo_episodes(96, seed=1))
    assert skipped == 0
    return converted


@pytest.fixture(scope="session")
def samples_file(samples: list[Sample], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "samples.jsonl"
    write_samples(samples, path)
    return path
