import pytest

from gptft import Tokenizer
from gptft.data.encoding import encode
from gptft.tasks import Task

from data_helpers import SENTIMENT, read, write_csv


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
