import json

from gptft.demo import DATA, run_demo, write_demo_files


def test_demo_files_keep_the_test_sentences_out_of_pre_training(tmp_path):
    paths = write_demo_files(tmp_path)
    rows = {split: [json.loads(line) for line in paths[split].read_text().splitlines()]
            for split in ("train", "validation", "test")}
    assert (len(rows["train"]), len(rows["validation"]), len(rows["test"])) == (10112, 1218, 1281)
    assert {r["label"] for r in rows["test"]} == {0, 1}
    pretraining = set(paths["pretrain"].read_text().splitlines())
    assert not pretraining & {r["text"] for r in rows["test"]}
    assert {r["text"] for r in rows["train"]} <= pretraining
    assert (DATA / "SOURCES.md").is_file()


def test_demo_runs_end_to_end_small(tmp_path):
    """The whole demo path with a smaller model and fewer steps (the real one is the README's first command)."""
    shrink = ["model.config={block_size: 64, n_embd: 32, n_layer: 1, n_head: 2}", "train.epochs=1",
              "train_tokenizer.vocab_size=600", "train.batch_size=64"]
    result = run_demo(tmp_path / "pre", pretrain_overrides=shrink,
                      finetune_overrides=["train.epochs=1", "train.max_steps=40", "data.buckets=[64]"])
    records = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and records[-1]["accuracy"] == result["test"]["accuracy"]
    assert (tmp_path / "pre" / "learning_curves.png").is_file()
    assert (tmp_path / "pre" / "pretrain" / "model" / "model.safetensors").is_file()
    scratch = run_demo(tmp_path / "scratch", from_scratch=True, pretrain_overrides=shrink,
                       finetune_overrides=["train.epochs=1", "train.max_steps=40", "data.buckets=[64]"])
    assert not (tmp_path / "scratch" / "pretrain").exists() and 0 <= scratch["test"]["accuracy"] <= 1
