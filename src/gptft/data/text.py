"""Unlabeled text for pre-training (Radford et al. 2018, Section 3.1): documents, then contiguous blocks.

Documents are tokenized, joined with an end-of-text token where the vocabulary has one, and cut into
contiguous blocks of the context length; `block_batches` holds out a seeded share of the blocks for
validation and cuts the rest into each worker's micro-batches.
"""

import gzip
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..model.tokenizer import END_OF_TEXT, Tokenizer
from .config import DataConfig, TextData
from .loading import load_split


def read_documents(config: TextData) -> list[str]:
    """The documents of the configured text source, empty ones dropped."""
    documents = []
    if config.files:
        for name in config.files:
            path = Path(name).expanduser()
            if not path.is_file():
                raise DataError(f"data.files: {path} does not exist")
            opener = gzip.open if path.suffix == ".gz" else open
            try:
                with opener(path, "rt", encoding="utf-8") as handle:
                    text = handle.read()
            except UnicodeDecodeError as error:
                raise DataError(f"{path}: not UTF-8 text (byte {error.start})") from None
            documents += [text] if config.whole_files else text.splitlines()
    else:
        dataset = load_split(DataConfig(dataset=config.dataset, subset=config.subset), config.split)
        if config.column not in dataset.column_names:
            raise DataError(f"{config.dataset}: column {config.column!r} not found; columns are {dataset.column_names}")
        documents = [t for t in dataset[config.column] if isinstance(t, str)]
    documents = [d for d in documents if d.strip()]
    if config.limit:
        documents = documents[:config.limit]
    if not documents:
        raise DataError("data: the pre-training text is empty")
    return documents


def make_blocks(documents: list[str], tokenizer: Tokenizer, block_size: int) -> np.ndarray:
    """Contiguous `(N, block_size)` blocks of the token stream (documents joined by end-of-text if known)."""
    separator = tokenizer.backend.token_to_id(END_OF_TEXT)
    stream = []
    for ids in tokenizer.encode_batch(documents):
        stream += ids
        if separator is not None:
            stream.append(separator)
    count = len(stream) // block_size
    if count < 2:
        raise DataError(f"the text gives {len(stream)} tokens, fewer than two blocks of {block_size}")
    return np.asarray(stream[:count * block_size], np.int32).reshape(count, block_size)


def block_batches(blocks: np.ndarray, validation_fraction: float, micro_batch: int, seed: int, rank: int = 0,
                  world_size: int = 1) -> tuple[list[tuple], np.ndarray]:
    """(this worker's training micro-batches `[(ids,)]`, the held-out validation blocks).

    Each global batch is `micro_batch x world_size` consecutive blocks of a seeded order; worker `rank`
    takes its rows of each, so the workers together see what one process would.
    """
    order = np.random.default_rng([seed, 11]).permutation(len(blocks))
    held_out = max(1, int(len(blocks) * validation_fraction))
    validation, training = blocks[order[:held_out]], blocks[order[held_out:]]
    width = micro_batch * world_size
    batches = [(training[i + rank * micro_batch:i + (rank + 1) * micro_batch],)
               for i in range(0, len(training) - width + 1, width)]
    return batches, validation
