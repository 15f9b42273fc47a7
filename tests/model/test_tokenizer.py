import json
import shutil

import numpy as np
import pytest
from tokenizers import Tokenizer as Backend
from tokenizers import models, normalizers, pre_tokenizers, trainers

from gptft import ModelFileError, Tokenizer
from gptft.model.tokenizer import END_OF_TEXT, train_bpe
from helpers import WORDS
from helpers import gpt2_files

AWKWARD = [
    "",
    "A perfectly ordinary sentence.",
    "  runs   of spaces\tand\t\ttabs\n\nand newlines  ",
    "Unicode: naïve café, Straße, ÆØÅ, 日本語のテキスト, عربى",
    "Emoji 😀👍🏽 and flags 🇫🇷 and ZWJ 👩‍👩‍👧",
    "Numbers 1234567890 3.14159 -42 1e10 $5,000.00",
    "Great movie!<br /><br />Terrible ending.<br />Would watch again",
    "supercalifragilisticexpialidocious" * 40,
    "MiXeD CaSe and ALL CAPS",
    "punctuation...!?;:'\"()[]{}--",
]

CORPUS = [
    "this movie was great and the acting was superb",
    "the plot was boring , the ending was terrible",
    "i loved every minute of it ! would watch again",
    "numbers like 1234 and 3.14 appear too",
    "a very long word : supercalifragilisticexpialidocious",
] * 20


@pytest.fixture(scope="module")
def openai_gpt_folder(tmp_path_factory):
    """An openai-gpt style BPE (lower-cased, `</w>` word ends) trained here, saved as vocab.json + merges.txt."""
    backend = Backend(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"], end_of_word_suffix="</w>")
    backend.train_from_iterator(CORPUS, trainer)
    folder = tmp_path_factory.mktemp("openai-gpt")
    backend.model.save(str(folder))
    return folder


@pytest.mark.parametrize("text", AWKWARD)
def test_gpt2_ids_match_transformers(gpt2_folder, text):
    from transformers import GPT2TokenizerFast

    theirs = GPT2TokenizerFast.from_pretrained(gpt2_folder)
    ours = Tokenizer.from_pretrained(gpt2_folder)
    ids = ours.encode(text)
    assert ids == theirs.encode(text, add_special_tokens=False)
    assert ours.decode(ids) == text  # byte-level BPE is lossless


def test_gpt2_openai_file_names_and_known_ids(tmp_path):
    shutil.copy(gpt2_files() / "encoder.json", tmp_path)
    shutil.copy(gpt2_files() / "vocab.bpe", tmp_path)
    tok = Tokenizer.from_pretrained(tmp_path)
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.base_vocab_size == 50257
    assert (tok.start_id, tok.delimiter_id, tok.extract_id, tok.vocab_size) == (50257, 50258, 50259, 50260)


@pytest.mark.parametrize("text", AWKWARD)
def test_openai_gpt_ids_match_transformers(openai_gpt_folder, text):
    from transformers import OpenAIGPTTokenizer

    theirs = OpenAIGPTTokenizer.from_pretrained(openai_gpt_folder)
    ours = Tokenizer.from_pretrained(openai_gpt_folder)
    assert ours.encode(text) == theirs.encode(text, add_special_tokens=False)


def test_openai_gpt_lowercases_and_marks_word_ends(openai_gpt_folder):
    tok = Tokenizer.from_pretrained(openai_gpt_folder)
    assert tok.encode("GREAT Movie") == tok.encode("great movie")
    assert tok.decode(tok.encode("The movie was GREAT")) == "the movie was great"
    vocab = json.loads((openai_gpt_folder / "vocab.json").read_text())
    assert tok.encode("movie") == [vocab["movie</w>"]]


def test_task_tokens_are_ids_never_text(gpt2_folder):
    tok = Tokenizer.from_pretrained(gpt2_folder)
    assert tok.extract_id not in tok.encode("_classify_ <extract> _start_ <|endoftext|>x")
    ids = [tok.start_id] + tok.encode("good") + [tok.delimiter_id] + tok.encode(" bad") + [tok.extract_id]
    assert tok.decode(ids) == "<start>good<delimiter> bad<extract>"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])


def test_batch_encode_equals_single_encode(gpt2_folder):
    tok = Tokenizer.from_pretrained(gpt2_folder)
    assert tok.encode_batch(AWKWARD) == [tok.encode(text) for text in AWKWARD]


def test_tokenizer_json_round_trip(openai_gpt_folder, tmp_path):
    tok = Tokenizer.from_pretrained(openai_gpt_folder)
    tok.save_pretrained(tmp_path)
    again = Tokenizer.from_pretrained(tmp_path)
    assert all(again.encode(t) == tok.encode(t) for t in AWKWARD)
    assert again.vocab_size == tok.vocab_size


def test_bad_tokenizer_folders_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="holds no tokenizer"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text("{not json")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    with pytest.raises(ModelFileError, match="vocab.json: not valid JSON"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text('{"a": 0, "b": 1, "ab": 2}')
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b c\n")
    with pytest.raises(ModelFileError, match="merges.txt:2: a merge line must hold two symbols"):
        Tokenizer.from_pretrained(tmp_path)


PRETRAIN_TEXT = [" ".join(np.random.default_rng(i).choice(WORDS, 10)) + "." for i in range(400)]


def test_trained_tokenizer_is_byte_level_with_an_end_of_text_token():
    tokenizer = train_bpe(PRETRAIN_TEXT, vocab_size=350)
    assert tokenizer.base_vocab_size <= 350 and tokenizer.backend.token_to_id(END_OF_TEXT) is not None
    sample = "Unseen wörds & émoji 😀 still round-trip"
    assert tokenizer.decode(tokenizer.encode(sample)) == sample  # bytes, so nothing is unknown
    assert len(tokenizer.encode(PRETRAIN_TEXT[0])) < len(PRETRAIN_TEXT[0]) / 2  # and the corpus' words were merged
