import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gptft.data.config import DataConfig
from gptft.data.loading import load_task_splits, split_off_validation
from gptft.errors import DataError
from gptft.tasks import Task

from data_helpers import SENTIMENT, read, write_csv


def test_every_local_format_reads_the_same(tmp_path):
    rows = [{"text": "good film", "label": 1}, {"text": "bad film", "label": 0}]
    write_csv(tmp_path / "a.csv", ["text", "label"], [[r["text"], r["label"]] for r in rows])
    (tmp_path / "a.tsv").write_text("text\tlabel\ngood film\t1\nbad film\t0\n")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for suffix in ("csv", "tsv", "jsonl", "json", "parquet"):
        examples = read(tmp_path / f"a.{suffix}")
        assert examples.fields["text"] == ["good film", "bad film"] and examples.labels == [1, 0], suffix


def test_aclimdb_layout_with_html_breaks(tmp_path):
    for split in ("train", "test"):
        for name, text in (("pos", "Loved it.<br /><br />Great cast."), ("neg", "Dull.<br/>Too long.")):
            folder = tmp_path / "aclImdb" / split / name
            folder.mkdir(parents=True)
            (folder / "0_9.txt").write_text(text)
            (folder / "1_8.txt").write_text(text + " Again.")
    examples = read("test", dataset=str(tmp_path / "aclImdb"), strip_html=True)
    assert sorted(examples.labels) == [0, 0, 1, 1]
    assert "<br" not in " ".join(examples.fields["text"])
    assert "Loved it.  Great cast." in examples.fields["text"]
    assert set(examples.ids) == {"neg/0_9", "neg/1_8", "pos/0_9", "pos/1_8"}


def test_columns_map_to_fields_joined_and_as_choices(tmp_path):
    path = write_csv(tmp_path / "swag.csv", ["sent1", "sent2", "ending0", "ending1", "ending2", "label"],
                     [["A man sits.", "He", "stands up.", "flies away.", "sings.", 0]])
    task = Task("multiple_choice", max_length=32)
    examples = read(path, task, columns={"context": ["sent1", "sent2"], "choices": ["ending0", "ending1", "ending2"]})
    assert examples.fields["context"] == ["A man sits. He"]
    assert examples.fields["choices"] == [["stands up.", "flies away.", "sings."]]


def test_labels_by_name_by_value_list_and_skipped(tmp_path):
    path = write_csv(tmp_path / "nli.csv", ["premise", "hypothesis", "label"],
                     [["p", "h", "neutral"], ["p2", "h2", "contradiction"], ["p3", "h3", "-"]])
    task = Task("entailment", labels=("entailment", "neutral", "contradiction"), max_length=32)
    assert read(path, task, skip_labels=("-",)).labels == [1, 2]
    path = write_csv(tmp_path / "stars.csv", ["text", "label"], [["great", 5], ["awful", 1]])
    assert read(path, label_values=(1, 5)).labels == [1, 0]


@pytest.mark.parametrize("header, rows, task, config, message", [
    (["review", "label"], [["x", 1]], SENTIMENT, {}, r"column\(s\) 'text' not found; the columns are label, review"),
    (["text", "label"], [["   ", 1]], SENTIMENT, {}, "row 0: the text in text is empty"),
    (["text", "label"], [["ok", 1], ["fine", 2]], SENTIMENT, {}, "row 1 column 'label': label 2 is outside the task's labels 0..1"),
    (["text", "label"], [["ok", "great"]], SENTIMENT, {}, "label 'great' is not one of the task's labels"),
    (["text_a", "text_b", "label"], [["a", "b", "high"]], Task("similarity"), {}, "the score 'high' is not a finite number"),
    (["text_a", "text_b", "label"], [["a", "b", "nan"]], Task("similarity"), {}, "row 0 column 'label': the label is missing"),
    (["context", "c0", "c1", "label"], [["ctx", "a", "b", 2]], Task("multiple_choice"),
     {"columns": {"choices": ["c0", "c1"]}}, "answer index 2 is beyond the 2 answers"),
    (["id", "text", "label"], [["a", "x", 1], ["a", "y", 0]], SENTIMENT, {"id_column": "id"},
     r"id 'a' appears twice \(rows 0 and 1\)"),
])
def test_bad_rows_are_named(tmp_path, header, rows, task, config, message):
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(DataError, match=message):
        read(path, task, **config)


def test_empty_unreadable_and_missing_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read(tmp_path / "empty.csv")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9 au lait,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv: not UTF-8 text \(byte \d+\)"):
        read(tmp_path / "latin1.csv")
    (tmp_path / "header_only.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="holds no rows"):
        read(tmp_path / "header_only.csv")
    with pytest.raises(DataError, match="no train.csv, .jsonl, .json or .parquet"):
        read("train", dataset=str(tmp_path))


def test_hub_dataset_offline_says_what_to_do():
    with pytest.raises(DataError, match="HF_DATASETS_OFFLINE is set"):
        read("train", dataset="not-a-real/dataset-name")


def test_validation_is_carved_reproducibly_and_disjointly(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["text", "label"], [[f"review {i}", i % 2] for i in range(100)])
    examples = read(path)
    train, validation = split_off_validation(examples, 0.1, seed=3)
    again_train, again_validation = split_off_validation(examples, 0.1, seed=3)
    assert len(validation) == 10 and len(train) == 90
    assert validation.ids == again_validation.ids
    assert not set(train.ids) & set(validation.ids)
    assert split_off_validation(examples, 0.1, seed=4)[1].ids != validation.ids


def test_task_splits_carve_validation_from_train_unless_given(tmp_path):
    for split, count in (("train", 40), ("validation", 6), ("test", 5)):
        write_csv(tmp_path / f"{split}.csv", ["text", "label"], [[f"{split} review {i}", i % 2] for i in range(count)])
    carved = load_task_splits(DataConfig(dataset=str(tmp_path), test="test", validation_fraction=0.25), SENTIMENT, 0)
    assert (len(carved["train"]), len(carved["validation"]), len(carved["test"])) == (30, 10, 5)
    assert all(text.startswith("train") for text in carved["validation"].fields["text"])
    given = load_task_splits(DataConfig(dataset=str(tmp_path), validation="validation"), SENTIMENT, 0)
    assert (len(given["train"]), len(given["validation"]), given["test"]) == (40, 6, None)
