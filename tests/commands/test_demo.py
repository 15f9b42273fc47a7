import json

from gptft.commands.demo import DATA, write_demo_files


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
