import gzip
import json

import numpy as np
import pytest

from gptft import GPT, Tokenizer
from gptft.errors import ConfigError, DataError
from gptft.pretrain import END_OF_TEXT, PretrainConfig, TextData, make_blocks, pretrain, read_documents, train_bpe
from gptft.runconfig import load
from helpers import WORDS

TEXT = [" ".join(np.random.default_rng(i).choice(WORDS, 10)) + "." for i in range(400)]


def test_trained_tokenizer_is_byte_level_with_an_end_of_text_token():
    tokenizer = train_bpe(TEXT, vocab_size=350)
    assert tokenizer.base_vocab_size <= 350 and tokenizer.backend.token_to_id(END_OF_TEXT) is not None
    sample = "Unseen wörds & émoji 😀 still round-trip"
    assert tokenizer.decode(tokenizer.encode(sample)) == sample  # bytes, so nothing is unknown
    assert len(tokenizer.encode(TEXT[0])) < len(TEXT[0]) / 2  # and the corpus' words were merged


def test_blocks_are_contiguous_with_separators():
    tokenizer = train_bpe(TEXT, vocab_size=350)
    blocks = make_blocks(TEXT[:50], tokenizer, block_size=16)
    stream = []
    for ids in tokenizer.encode_batch(TEXT[:50]):
        stream += ids + [tokenizer.backend.token_to_id(END_OF_TEXT)]
    assert blocks.shape == (len(stream) // 16, 16)
    np.testing.assert_array_equal(blocks.reshape(-1), stream[:blocks.size])
    with pytest.raises(DataError, match="fewer than two blocks"):
        make_blocks(TEXT[:1], tokenizer, block_size=512)


def test_reading_text_files(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt") as handle:
        handle.write("third line\n")
    assert read_documents(TextData(files=(str(tmp_path / "a.txt"), str(tmp_path / "b.txt.gz")))) == [
        "first line", "second line", "third line"]
    assert read_documents(TextData(files=(str(tmp_path / "a.txt"),), whole_files=True)) == [
        "first line\n\nsecond line\n"]
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match=r"bad.txt: not UTF-8"):
        read_documents(TextData(files=(str(tmp_path / "bad.txt"),)))
    with pytest.raises(DataError, match="does not exist"):
        read_documents(TextData(files=(str(tmp_path / "missing.txt"),)))


def test_config_needs_one_tokenizer_source(tmp_path):
    base = {"model": {"preset": "tiny"}, "data": {"files": ["x.txt"]}}
    with pytest.raises(ConfigError, match="needs `tokenizer` or `train_tokenizer`"):
        load(PretrainConfig, values=base)
    with pytest.raises(ConfigError, match="not both"):
        load(PretrainConfig, values={**base, "tokenizer": "gpt2", "train_tokenizer": {"vocab_size": 500}})
    config = load(PretrainConfig, values={**base, "train_tokenizer": {}})
    assert (config.train.lr, config.train.schedule, config.train.warmup) == (2.5e-4, "cosine", 2000)


def test_pretrain_learns_and_its_model_loads_for_fine_tuning(tmp_path):
    (tmp_path / "text.txt").write_text("\n".join(TEXT) + "\n")
    config = load(PretrainConfig, values={
        "model": {"preset": "tiny", "config": {"block_size": 32}},
        "train_tokenizer": {"vocab_size": 350},
        "data": {"files": [str(tmp_path / "text.txt")], "validation_fraction": 0.1},
        "train": {"lr": 3.0e-3, "batch_size": 8, "epochs": 2, "warmup": 5, "log_every": 5},
        "output_dir": str(tmp_path / "pre")})
    result = pretrain(config)
    records = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["lm_loss"] for r in records if "lm_loss" in r]
    assert losses[-1] < losses[0] - 1.0  # it learned the word statistics
    assert result["validation"]["val_loss"] < np.log(350)
    model = GPT.from_pretrained(result["model_dir"])
    tokenizer = Tokenizer.from_pretrained(result["model_dir"])
    assert model.config.vocab_size == tokenizer.vocab_size and model.config.block_size == 32
