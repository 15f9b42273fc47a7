"""The whole `gptft demo` path, with a smaller model and fewer steps (the real one is the README's first command)."""

import json

from gptft import Tokenizer
from gptft.commands.demo import run_demo


def test_demo_runs_end_to_end_small(tmp_path):
    """The whole demo path with a smaller model and fewer steps (the real one is the README's first command)."""
    shrink = ["model.config={block_size: 64, n_embd: 32, n_layer: 1, n_head: 2}", "train.epochs=1",
              "train_tokenizer.vocab_size=600", "train.batch_size=64", "train.max_steps=30"]
    result = run_demo(tmp_path / "pre", pretrain_overrides=shrink,
                      finetune_overrides=["train.epochs=1", "train.max_steps=40", "data.buckets=[64]"])
    records = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and records[-1]["accuracy"] == result.test["accuracy"]
    assert (tmp_path / "pre" / "learning_curves.png").is_file()
    assert (tmp_path / "pre" / "pretrain" / "model" / "model.safetensors").is_file()
    scratch = run_demo(tmp_path / "scratch", from_scratch=True, pretrain_overrides=shrink,
                       finetune_overrides=["train.epochs=1", "train.max_steps=40", "data.buckets=[64]"])
    assert not (tmp_path / "scratch" / "pretrain").exists()
    records = [json.loads(line) for line in (tmp_path / "scratch" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1] == {"step": 40, "split": "test", **scratch.test}
    shape = json.loads((tmp_path / "scratch" / "model" / "config.json").read_text())
    assert (shape["n_embd"], shape["n_layer"], shape["n_head"]) == (32, 1, 2)  # the demo's model, from random weights
    assert Tokenizer.from_pretrained(tmp_path / "scratch" / "tokenizer").vocab_size == shape["vocab_size"]
