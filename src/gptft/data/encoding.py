"""Tokenizing and formatting examples once, cached on disk.

`encode` keys its cache by the tokenizer, the format, the maximum length and the data, so a second run
(or a second command on the same data) starts at once; a damaged cache entry is rebuilt, never trusted.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..tasks.formats import SequenceTooLong, TaskTokens
from ..tasks.task import Task
from .loading import Examples


@dataclass
class Encoded:
    """Formatted token sequences of one split: per example a list of S sequences, its label and id."""

    sequences: list
    labels: np.ndarray
    ids: list

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def lengths(self) -> np.ndarray:
        """The longest sequence of each example."""
        return np.array([max(len(s) for s in example) for example in self.sequences], np.int64)


def _cache_path(cache_dir: str, key: dict) -> Path:
    root = Path(cache_dir or os.environ.get("GPTFT_CACHE") or Path.home() / ".cache" / "gptft")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return root / "encoded" / f"{digest}.npz"


def _save_encoded(path: Path, encoded: Encoded) -> None:
    per_example = np.array([len(e) for e in encoded.sequences], np.int32)
    lengths = np.array([len(s) for e in encoded.sequences for s in e], np.int32)
    tokens = np.fromiter((t for e in encoded.sequences for s in e for t in s), np.int32, count=int(lengths.sum()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, tokens=tokens, lengths=lengths, per_example=per_example, labels=encoded.labels,
             ids=np.array([json.dumps(i) for i in encoded.ids]))
    os.replace(tmp, path)


def _load_encoded(path: Path) -> Encoded | None:
    try:
        with np.load(path, allow_pickle=False) as saved:
            tokens, lengths, per_example = saved["tokens"], saved["lengths"], saved["per_example"]
            labels, ids = saved["labels"], [json.loads(i) for i in saved["ids"]]
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is rebuilt, never trusted
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    flat = [tokens[bounds[i]:bounds[i + 1]].tolist() for i in range(len(lengths))]
    starts = np.concatenate([[0], np.cumsum(per_example)])
    sequences = [flat[starts[i]:starts[i + 1]] for i in range(len(per_example))]
    return Encoded(sequences, labels, ids)


def _digest(examples: Examples) -> str:
    digest = hashlib.sha256()
    for name in sorted(examples.fields):
        for value in examples.fields[name]:
            digest.update(json.dumps(value).encode())
    digest.update(json.dumps([examples.labels, examples.ids], default=str).encode())
    return digest.hexdigest()


def encode(examples: Examples, task: Task, tokenizer, cache_dir: str = "", use_cache: bool = True) -> Encoded:
    """Tokenize and format every example; cached on disk by tokenizer, format, length and content."""
    key = {"tokenizer": hashlib.sha256(tokenizer.backend.to_str().encode()).hexdigest(),
           "kind": task.kind, "max_length": task.max_length, "truncation": task.truncation_mode,
           "data": _digest(examples), "version": 1}
    path = _cache_path(cache_dir, key) if use_cache else None
    if path is not None and path.is_file():
        cached = _load_encoded(path)
        if cached is not None and len(cached) == len(examples):
            return cached
    tokens = TaskTokens.of(tokenizer)
    encoded_fields = {}
    for name, values in examples.fields.items():
        if name == "choices":
            counts = [len(v) for v in values]
            flat = tokenizer.encode_batch([a for answers in values for a in answers])
            starts = np.concatenate([[0], np.cumsum(counts)])
            encoded_fields[name] = [flat[starts[i]:starts[i + 1]] for i in range(len(values))]
        else:
            encoded_fields[name] = tokenizer.encode_batch(values)
    sequences = []
    for i in range(len(examples)):
        row = {name: encoded_fields[name][i] for name in encoded_fields}
        try:
            sequences.append(task.format(row, tokens))
        except SequenceTooLong as error:
            raise DataError(f"{examples.source} row {i}: {error}") from None
    result = Encoded(sequences, np.asarray(examples.labels, dtype=task.label_dtype), list(examples.ids))
    if path is not None:
        _save_encoded(path, result)
    return result


