"""The examples run, on local folders shaped like the real ones (the hub is unreachable here)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from gptft import GPT, GPTConfig, TaskModel
from gptft.tasks.heads import HEADS
from helpers import write_keyword_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # MindSpore's graph compiler looks the head's module up by name
    spec.loader.exec_module(module)
    return module


def test_custom_head_example_trains_through_the_cli(tmp_path):
    example = load_example("custom_head")
    try:
        assert HEADS["mean_pool"] is example.MeanPoolHead
        config = write_keyword_run(tmp_path, examples=320)
        argv = ["train", str(config), "--output-dir", str(tmp_path / "run"), "--task.head=mean_pool", "--train.epochs=4",
                "--train.lr=3e-3"]
        from gptft.commands.cli import main

        assert main(argv) == 0
        task = json.loads((tmp_path / "run" / "model" / "task.json").read_text())
        assert task["head"] == "mean_pool"
        assert isinstance(TaskModel.from_pretrained(tmp_path / "run" / "model").head, example.MeanPoolHead)
        records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        validation = [r["accuracy"] for r in records if r.get("split") == "validation"]
        assert validation[0] < 0.7 and max(validation) >= 0.95  # it learned the task, from chance
        assert records[-1]["split"] == "test" and records[-1]["accuracy"] >= 0.8
    finally:
        HEADS.pop("mean_pool", None)


def test_imdb_example_on_an_aclimdb_folder_and_a_local_openai_gpt(tmp_path, gpt2_folder):
    for split in ("train", "test"):
        for label, words in (("pos", "a wonderful moving film"), ("neg", "a dull tedious mess")):
            folder = tmp_path / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i in range(12):
                (folder / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(f"{words} number {i}.<br /><br />The end.")
    model = tmp_path / "openai-gpt"
    GPT(GPTConfig.preset("tiny", vocab_size=50257, block_size=512)).save_pretrained(model)
    for name in ("vocab.json", "merges.txt"):
        (model / name).write_bytes((gpt2_folder / name).read_bytes())
    example = load_example("imdb_sentiment")
    accuracy = example.main(["--model", str(model), "--data-dir", str(tmp_path / "aclImdb"), "--output-dir",
                             str(tmp_path / "run"), "--train.max_steps=2", "--train.batch_size=4", "--train.grad_accum=1",
                             "--train.eval_every=2", f"--data.cache_dir={tmp_path / 'cache'}"])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and records[-1]["accuracy"] == accuracy
    predictions = [json.loads(line) for line in (tmp_path / "run" / "predictions-test.jsonl").read_text().splitlines()]
    assert len(predictions) == 24 and all(p["id"].startswith(("pos/", "neg/")) for p in predictions)
    right = [p["label"] == ("positive" if p["id"].startswith("pos/") else "negative") for p in predictions]
    assert accuracy == pytest.approx(sum(right) / 24)  # the accuracy is that of the predictions, ids to truth


def test_ablations_example_runs_every_variant_and_writes_its_table_and_figure(tmp_path):
    example = load_example("ablations")
    shrink = ["--pretrain-override=model.config={block_size: 64, n_embd: 32, n_layer: 1, n_head: 2}",
              "--pretrain-override=train_tokenizer.vocab_size=600", "--pretrain-override=train.max_steps=6",
              "--finetune-override=train.max_steps=4", "--finetune-override=train.epochs=1",
              "--finetune-override=data.buckets=[64]", "--finetune-override=data.limit=64"]
    results = example.main(["--output-dir", str(tmp_path), "--seeds", "0", "--checkpoint-every", "3", *shrink])
    assert [p["step"] for p in results["zero_shot"]] == [0, 3, 6]  # the initial weights, then every checkpoint
    assert all(0 <= p["accuracy"] <= 1 for p in results["zero_shot"])
    assert sorted(results["fine_tune"]) == sorted(["full (λ = 0.5)", "no auxiliary LM loss (λ = 0)", "from scratch",
                                                   "transfer 0 of 1 blocks"])
    for name, folder in (("no auxiliary LM loss (λ = 0)", "no-auxiliary-LM-loss-seed0"),
                         ("transfer 0 of 1 blocks", "transfer-0-of-1-blocks-seed0")):
        logged = [json.loads(line) for line in (tmp_path / "runs" / folder / "metrics.jsonl").read_text().splitlines()]
        assert logged[-1]["accuracy"] == results["fine_tune"][name][0]  # the table reads what each run tested
    config = (tmp_path / "runs" / "transfer-0-of-1-blocks-seed0" / "config.yaml").read_text()
    assert "transfer_layers: 0" in config
    assert "lm_coef: 0.0" in (tmp_path / "runs" / "no-auxiliary-LM-loss-seed0" / "config.yaml").read_text()
    assert "| from scratch |" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"
