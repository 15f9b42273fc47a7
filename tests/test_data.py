import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gptft import Tokenizer
from gptft.data import (Encoded, TrainBatches, bucket_for, default_buckets, encode, eval_batches, load_split,
                        read_examples, split_off_validation)
from gptft.errors import DataError
from gptft.runconfig import DataConfig
from gptft.tasks import Task

SENTIMENT = Task("classification", labels=("negative", "positive"), max_length=64)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read(path_or_split, task=SENTIMENT, **config):
    config = DataConfig(**config)
    return read_examples(load_split(config, str(path_or_split)), task, config, "split")


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


def test_encode_formats_and_caches(tmp_path, gpt2_folder, monkeypatch):
    tokenizer = Tokenizer.from_pretrained(gpt2_folder)
    path = write_csv(tmp_path / "t.csv", ["text", "label"], [["A fine film.", 1], ["Dull.", 0]])
    examples = read(path)
    encoded = encode(examples, SENTIMENT, tokenizer, cache_dir=str(tmp_path / "cache"))
    assert encoded.sequences[0] == [[tokenizer.start_id, *tokenizer.encode("A fine film."), tokenizer.extract_id]]
    assert list(encoded.labels) == [1, 0] and len(list((tmp_path / "cache").rglob("*.npz"))) == 1

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("a cached split must not be tokenized again")

    monkeypatch.setattr(tokenizer, "encode_batch", no_tokenizing)
    cached = encode(examples, SENTIMENT, tokenizer, cache_dir=str(tmp_path / "cache"))
    assert cached.sequences == encoded.sequences and cached.ids == encoded.ids
    longer = Task("classification", labels=("negative", "positive"), max_length=32)
    with pytest.raises(AssertionError):  # another max length is another cache entry
        encode(examples, longer, tokenizer, cache_dir=str(tmp_path / "cache"))


def synthetic_encoded(lengths, rng):
    """One sequence per example whose first token is the example's index, so batches can be traced back."""
    sequences = [[[i] + list(rng.integers(0, 50, n - 1))] for i, n in enumerate(lengths)]
    return Encoded(sequences, np.arange(len(lengths)).astype(np.int32) % 2, list(range(len(lengths))))


def test_default_buckets_grow_slowly_and_end_at_the_maximum():
    buckets = default_buckets(512)
    assert buckets[0] == 16 and buckets[-1] == 512 and len(buckets) == 15
    assert all(b / a <= 1.5 for a, b in zip(buckets, buckets[1:]))
    assert bucket_for(17, buckets) == buckets[1]
    with pytest.raises(DataError, match="exceeds the longest batch length"):
        bucket_for(513, buckets)


def test_train_batches_are_seeded_cover_each_example_once_and_bucket(rng):
    lengths = rng.integers(5, 200, 403)
    encoded = synthetic_encoded(lengths, rng)
    task = Task("classification", labels=("a", "b"), max_length=256)
    source = TrainBatches(encoded, task, micro_batch=8, seed=1)
    assert source.num_batches == 403 // 8
    first, again, other = source.epoch(0), TrainBatches(encoded, task, 8, seed=1).epoch(0), source.epoch(1)
    labels_first = [tuple(b[3]) for b in first]
    assert labels_first == [tuple(b[3]) for b in again]
    order_first = [int(i) for b in first for i in b[0][:, 0, 0]]
    assert order_first != [int(i) for b in other for i in b[0][:, 0, 0]]
    assert len(order_first) == len(set(order_first)) == 8 * source.num_batches  # each example at most once
    for ids, positions, mask, labels in first:
        assert ids.shape[-1] in source.buckets and ids.shape[0] == 8
        assert ids.shape[-1] == bucket_for(int(mask.sum(-1).max()), source.buckets)
        np.testing.assert_array_equal(mask.sum(axis=(1, 2)), lengths[ids[:, 0, 0]])


def test_padding_share_is_what_the_batches_hold(rng):
    lengths = rng.integers(5, 200, 160)
    encoded = synthetic_encoded(lengths, rng)
    task = Task("classification", labels=("a", "b"), max_length=256)
    source = TrainBatches(encoded, task, micro_batch=8, seed=0)
    batches = source.epoch(0)
    real = sum(b[2].sum() for b in batches)
    computed = sum(b[0].size for b in batches)
    assert source.padding_share(0) == pytest.approx(1 - real / computed)
    fixed = TrainBatches(encoded, task, micro_batch=8, seed=0, buckets=(256,))
    assert fixed.padding_share(0) > 2 * source.padding_share(0)


def test_workers_split_each_global_batch(rng):
    encoded = synthetic_encoded(rng.integers(5, 60, 64), rng)
    task = Task("classification", labels=("a", "b"), max_length=64)
    whole = TrainBatches(encoded, task, micro_batch=8, seed=2).epoch(0)
    parts = [TrainBatches(encoded, task, micro_batch=4, seed=2, rank=r, world_size=2).epoch(0) for r in (0, 1)]
    assert len(whole) == len(parts[0]) == len(parts[1])
    for full, a, b in zip(whole, parts[0], parts[1]):
        np.testing.assert_array_equal(np.concatenate([a[0], b[0]]), full[0])


def test_eval_batches_sorted_by_length_with_ids(rng):
    encoded = synthetic_encoded([30, 5, 17, 9], rng)
    task = Task("classification", labels=("a", "b"), max_length=64)
    batches, ids = eval_batches(encoded, task, batch_size=2)
    assert ids == [1, 3, 2, 0]
    assert [b[0].shape[-1] for b in batches] == [16, 32]


def test_multiple_choice_batches_keep_a_fixed_number_of_choices(rng):
    sequences = [[list(rng.integers(0, 50, 6)) for _ in range(k)] for k in (2, 4, 3, 4)]
    encoded = Encoded(sequences, np.zeros(4, np.int32), list(range(4)))
    task = Task("multiple_choice", max_length=32)
    for ids, positions, mask, labels in TrainBatches(encoded, task, micro_batch=2, seed=0).epoch(0):
        assert ids.shape[1] == 4
        assert ((positions >= 0).sum(axis=1) >= 2).all()
