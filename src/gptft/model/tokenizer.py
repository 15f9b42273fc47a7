"""GPT-1 and GPT-2 tokenizers on the `tokenizers` library, plus the three task tokens.

- GPT-2: byte-level BPE, from `vocab.json` + `merges.txt` or OpenAI's `encoder.json` + `vocab.bpe`.
- GPT-1 (`openai-gpt`): BPE with `</w>` word ends after BERT's normaliser (lower-casing, accent
  stripping) and pre-tokeniser, as transformers' `OpenAIGPTTokenizerFast` builds it.
- A `tokenizer.json` written by `tokenizers` (or `save_pretrained`) loads as is.
- `train_bpe` learns a new byte-level BPE vocabulary from text, for pre-training from scratch.

The task tokens (start, delimiter, extract; Radford et al. 2018, Figure 1) are ids just past the base
vocabulary, never strings: a review that happens to contain "_start_" stays text.
"""

import json
from pathlib import Path

from tokenizers import Tokenizer as _Backend
from tokenizers import decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

from ..errors import ModelFileError
from .hub import TOKENIZER_FILES, resolve_folder

TASK_TOKENS = ("start", "delimiter", "extract")
END_OF_TEXT = "<|endoftext|>"


def _read_merges(path: Path) -> list[tuple[str, str]]:
    merges = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ModelFileError(f"{path}:{number}: a merge line must hold two symbols, got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


def _read_vocab(path: Path) -> dict[str, int]:
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise ModelFileError(f"{path}: expected a JSON object mapping tokens to integer ids")
    return vocab


def byte_level_backend(vocab: dict[str, int], merges: list[tuple[str, str]]) -> _Backend:
    """GPT-2's tokenizer: byte-level pre-tokenisation (no prefix space) and BPE."""
    backend = _Backend(BPE(vocab=vocab, merges=merges, fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def openai_gpt_backend(vocab: dict[str, int], merges: list[tuple[str, str]]) -> _Backend:
    """GPT-1's tokenizer: BERT's lower-casing normaliser and pre-tokeniser, BPE with `</w>` word ends."""
    backend = _Backend(BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>", unk_token="<unk>",
                           fuse_unk=False))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.BPEDecoder(suffix="</w>")
    return backend


class Tokenizer:
    """Text to token ids and back, with the task tokens' ids.

    Args:
        backend: a `tokenizers.Tokenizer`.

    Attributes:
        start_id, delimiter_id, extract_id: the task tokens, the ids just past the base vocabulary.
        vocab_size: base vocabulary plus the three task tokens; the model's embedding needs this many rows.

    Example:
        >>> tok = Tokenizer.from_pretrained("gpt2")        # a hub name or a local folder
        >>> ids = tok.encode("A fine film.")
        >>> tok.decode(ids)
        'A fine film.'
    """

    def __init__(self, backend: _Backend):
        self.backend = backend
        self.base_vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self.start_id, self.delimiter_id, self.extract_id = (self.base_vocab_size + i for i in range(3))
        self.vocab_size = self.base_vocab_size + len(TASK_TOKENS)

    @classmethod
    def from_pretrained(cls, name_or_path) -> "Tokenizer":
        """Load from a folder (or hub name) holding tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe."""
        folder = resolve_folder(name_or_path, TOKENIZER_FILES)
        if (folder / "tokenizer.json").is_file():
            try:
                return cls(_Backend.from_file(str(folder / "tokenizer.json")))
            except Exception as error:  # tokenizers raises a bare Exception on bad files
                raise ModelFileError(f"{folder / 'tokenizer.json'}: cannot be read ({error})") from None
        for vocab_name, merges_name in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
            if (folder / vocab_name).is_file() and (folder / merges_name).is_file():
                vocab = _read_vocab(folder / vocab_name)
                merges = _read_merges(folder / merges_name)
                # GPT-1's vocabulary marks word ends with "</w>"; GPT-2's byte-level one never does.
                if any(token.endswith("</w>") for token in vocab):
                    return cls(openai_gpt_backend(vocab, merges))
                return cls(byte_level_backend(vocab, merges))
        raise ModelFileError(f"{folder} holds no tokenizer: expected tokenizer.json, vocab.json + merges.txt, "
                             "or encoder.json + vocab.bpe")

    def save_pretrained(self, folder) -> None:
        """Write `tokenizer.json` (which `from_pretrained` reads back)."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.backend.save(str(Path(folder) / "tokenizer.json"))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without any task token."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of many texts at once (encoded in parallel by the Rust backend)."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids) -> str:
        """Text of `ids`; task tokens come out as `<start>`, `<delimiter>`, `<extract>`."""
        names = {self.start_id: "<start>", self.delimiter_id: "<delimiter>", self.extract_id: "<extract>"}
        pieces, run = [], []
        for token in ids:
            token = int(token)
            if token in names:
                if run:
                    pieces.append(self.backend.decode(run, skip_special_tokens=False))
                    run = []
                pieces.append(names[token])
            elif not 0 <= token < self.base_vocab_size:
                raise ValueError(f"token id {token} is outside the vocabulary (0..{self.vocab_size - 1})")
            else:
                run.append(token)
        if run:
            pieces.append(self.backend.decode(run, skip_special_tokens=False))
        return "".join(pieces)

    def __len__(self) -> int:
        return self.vocab_size


def train_bpe(documents: list[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on `documents`, with an end-of-text token."""
    from tokenizers import trainers

    backend = byte_level_backend({}, [])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(documents, trainer)
    return Tokenizer(backend)
