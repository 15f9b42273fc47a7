import gzip

import numpy as np
import pytest

from gptft.data.config import TextData
from gptft.data.text import block_batches, make_blocks, read_documents
from gptft.errors import DataError
from gptft.model.tokenizer import END_OF_TEXT, train_bpe
from helpers import WORDS

TEXT = [" ".join(np.random.default_rng(i).choice(WORDS, 10)) + "." for i in range(400)]


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


def test_block_batches_hold_out_a_seeded_share_and_split_global_batches_between_workers():
    blocks = np.arange(103 * 4, dtype=np.int32).reshape(103, 4)
    batches, validation = block_batches(blocks, 0.1, micro_batch=4, seed=0)
    assert len(validation) == 10 and len(batches) == 93 // 4
    again, _ = block_batches(blocks, 0.1, micro_batch=4, seed=0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again))
    seen = np.concatenate([b[0] for b in batches] + [validation])
    assert len(np.unique(seen[:, 0])) == len(seen)  # no block twice, none both trained and held out
    workers = [block_batches(blocks, 0.1, micro_batch=2, seed=0, rank=r, world_size=2)[0] for r in (0, 1)]
    for one, first, second in zip(batches, *workers):
        np.testing.assert_array_equal(np.concatenate([first[0], second[0]]), one[0])
