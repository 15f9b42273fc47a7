import json

import numpy as np
import pytest

from gptft import GPT, PretrainConfig, Tokenizer, load_config, pretrain
from gptft.errors import ConfigError
from helpers import WORDS

TEXT = [" ".join(np.random.default_rng(i).choice(WORDS, 10)) + "." for i in range(400)]


def test_config_needs_one_tokenizer_source(tmp_path):
    base = {"model": {"preset": "tiny"}, "data": {"files": ["x.txt"]}}
    with pytest.raises(ConfigError, match="needs `tokenizer` or `train_tokenizer`"):
        load_config(PretrainConfig, values=base)
    with pytest.raises(ConfigError, match="not both"):
        load_config(PretrainConfig, values={**base, "tokenizer": "gpt2", "train_tokenizer": {"vocab_size": 500}})
    config = load_config(PretrainConfig, values={**base, "train_tokenizer": {}})
    assert (config.train.lr, config.train.schedule, config.train.warmup) == (2.5e-4, "cosine", 2000)


def test_pretrain_learns_and_its_model_loads_for_fine_tuning(tmp_path):
    (tmp_path / "text.txt").write_text("\n".join(TEXT) + "\n")
    config = load_config(PretrainConfig, values={
        "model": {"preset": "tiny", "config": {"block_size": 32}},
        "train_tokenizer": {"vocab_size": 350},
        "data": {"files": [str(tmp_path / "text.txt")], "validation_fraction": 0.1},
        "train": {"lr": 3.0e-3, "batch_size": 8, "epochs": 2, "warmup": 5, "log_every": 5},
        "output_dir": str(tmp_path / "pre")})
    result = pretrain(config)
    records = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["lm_loss"] for r in records if "lm_loss" in r]
    assert losses[-1] < losses[0] - 1.0  # it learned the word statistics
    assert result.validation["val_loss"] < np.log(350)
    model = GPT.from_pretrained(result.model_dir)
    tokenizer = Tokenizer.from_pretrained(result.model_dir)
    assert model.config.vocab_size == tokenizer.vocab_size and model.config.block_size == 32
