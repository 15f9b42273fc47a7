"""From a dataset (hub name or local files) to tokenized, formatted examples and length-bucketed batches.

1. `load_split` reads one split with `datasets`: a hub dataset (`stanfordnlp/imdb`, `glue`/`sst2`), or a
   local csv, json/jsonl or parquet file, or the `aclImdb` folder layout (`{train,test}/{pos,neg}/*.txt`).
2. `read_examples` maps the dataset's columns to the task's fields and checks every row: a missing column,
   an empty text, a label outside the task's labels, a non-number score, an answer index beyond the
   answers and a duplicated id are each a `DataError` naming the split, row and column.
3. `encode` tokenizes and formats once and caches the result on disk, keyed by the tokenizer, the
   format, the maximum length and the data, so a second run starts at once.
4. `TrainBatches` groups examples of similar length and pads each batch to one of a few fixed lengths
   (the compiled step is built once per length), shuffled with the seed and the epoch number, so the order
   can be recomputed on resume. `eval_batches` does the same in a fixed order.
"""

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataError
from .formats import SequenceTooLong, TaskTokens
from .runconfig import DataConfig
from .tasks import Task

LOCAL_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------- loading

def _is_aclimdb(folder: Path) -> bool:
    return (folder / "train" / "pos").is_dir() or (folder / "test" / "pos").is_dir()


def _read_aclimdb(folder: Path):
    """The aclImdb layout: one review per file under pos/ and neg/ (label 1 and 0); ids are the file names."""
    import datasets

    texts, labels, ids = [], [], []
    for label, name in ((0, "neg"), (1, "pos")):
        directory = folder / name
        if not directory.is_dir():
            raise DataError(f"{folder}: an aclImdb split needs pos/ and neg/ folders; {name}/ is missing")
        for path in sorted(directory.glob("*.txt")):
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError as error:
                raise DataError(f"{path}: not UTF-8 text (byte {error.start}); re-save it as UTF-8") from None
            labels.append(label)
            ids.append(f"{name}/{path.stem}")
    if not texts:
        raise DataError(f"{folder}: no reviews (*.txt) under pos/ or neg/")
    return datasets.Dataset.from_dict({"id": ids, "text": texts, "label": labels})


def _read_local_file(path: Path):
    import datasets

    builder = LOCAL_SUFFIXES.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unsupported file type; use one of {', '.join(sorted(LOCAL_SUFFIXES))}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if builder in ("csv", "json"):
        lines = 0
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:  # decode it all once: the csv reader's own error names no byte
                    lines += bool(line.strip())
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text (byte {error.start}); re-save it as UTF-8") from None
        if builder == "csv" and lines < 2:
            raise DataError(f"{path}: the file holds no rows (only a header)")
    options = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    datasets.disable_progress_bars()  # a local file converts in moments; its progress bar is only noise
    try:
        dataset = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as error:  # datasets wraps parser errors in many types; all mean "unreadable"
        cause = error.__cause__ or error
        raise DataError(f"{path}: cannot be read as {builder} ({type(cause).__name__}: {str(cause)[:200]})") from None
    finally:
        datasets.enable_progress_bars()
    if len(dataset) == 0:
        raise DataError(f"{path}: the file holds no rows")
    return dataset


def _find_split_file(folder: Path, split: str) -> Path | None:
    for suffix in LOCAL_SUFFIXES:
        candidate = folder / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def load_split(config: DataConfig, split: str):
    """One split as a `datasets.Dataset`; `split` is a split name of `config.dataset` or a local path."""
    path = Path(split).expanduser()
    if path.is_file():
        return _read_local_file(path)
    if path.is_dir():
        return _read_aclimdb(path) if (path / "pos").is_dir() else _load_folder(path)
    if not config.dataset:
        raise DataError(f"data: split {split!r} is not a file or folder, and no data.dataset is given")
    source = Path(config.dataset).expanduser()
    if source.is_dir():
        if _is_aclimdb(source):
            if not (source / split).is_dir():
                raise DataError(f"{source}: no {split}/ folder in this aclImdb layout")
            return _read_aclimdb(source / split)
        found = _find_split_file(source, split)
        if found is None:
            raise DataError(f"{source}: no {split}.csv, .jsonl, .json or .parquet file for split {split!r}")
        return _read_local_file(found)
    if source.suffix.lower() in LOCAL_SUFFIXES:
        raise DataError(f"data.dataset: file {source} does not exist")
    import datasets

    try:
        return datasets.load_dataset(config.dataset, config.subset or None, split=split)
    except Exception as error:  # offline, unknown name, unknown split: all reported the same way
        hint = ("HF_DATASETS_OFFLINE is set, so only the local cache was searched"
                if os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0")
                else "set HF_ENDPOINT to a reachable mirror, or download the data and give local files")
        raise DataError(f"dataset {config.dataset!r}{'/' + config.subset if config.subset else ''} split "
                        f"{split!r} could not be loaded ({type(error).__name__}: {str(error)[:200]}); {hint}") from None


def _load_folder(folder: Path):
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in LOCAL_SUFFIXES)
    if len(files) != 1:
        raise DataError(f"{folder}: expected one data file or an aclImdb split (pos/, neg/), found {len(files)} files")
    return _read_local_file(files[0])


# ----------------------------------------------------------------------------------------------- rows

@dataclass
class Examples:
    """Rows of one split: text per task field (choices: a list per row), labels and ids."""

    fields: dict
    labels: list
    ids: list
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Sequence[int], source: str) -> "Examples":
        return Examples({k: [v[i] for i in index] for k, v in self.fields.items()},
                        [self.labels[i] for i in index], [self.ids[i] for i in index], source)


def _columns_for(task: Task, config: DataConfig) -> dict:
    mapping = {name: config.columns.get(name, name) for name in task.fields}
    mapping["label"] = config.columns.get("label", "label")
    unknown = sorted(set(config.columns) - set(mapping))
    if unknown:
        raise DataError(f"data.columns: {', '.join(unknown)} is not a field of a {task.kind} task "
                        f"(fields: {', '.join(mapping)})")
    return mapping


def _label_index(task: Task, config: DataConfig, value, where: str):
    """The label of one row as the task needs it: a class index, an answer index or a float score."""
    if value is None:
        raise DataError(f"{where}: the label is missing")
    if task.is_regression:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"{where}: the score {value!r} is not a finite number")
        return float(value)
    if config.label_values:
        values = [str(v) for v in config.label_values]
        if str(value) not in values:
            raise DataError(f"{where}: label {value!r} is not among data.label_values {list(config.label_values)}")
        return values.index(str(value))
    if task.labels and isinstance(value, str):
        if value not in task.labels:
            raise DataError(f"{where}: label {value!r} is not one of the task's labels {list(task.labels)}")
        return task.labels.index(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise DataError(f"{where}: label {value!r} is not a class index or a label name")
    if task.labels and not 0 <= value < len(task.labels):
        raise DataError(f"{where}: label {value} is outside the task's labels 0..{len(task.labels) - 1} "
                        f"({', '.join(task.labels)})")
    return int(value)


def _text(row: dict, columns, where: str, strip_html: bool) -> str:
    names = [columns] if isinstance(columns, str) else list(columns)
    parts = []
    for name in names:
        value = row[name]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise DataError(f"{where}: column {name!r} is empty")
        if not isinstance(value, str):
            raise DataError(f"{where}: column {name!r} holds {type(value).__name__} {value!r}, not text")
        parts.append(value)
    text = " ".join(parts)
    if strip_html:
        text = _BREAK.sub(" ", text)
    if not text.strip():
        raise DataError(f"{where}: the text in {names[0] if len(names) == 1 else names} is empty")
    return text


def read_examples(dataset, task: Task, config: DataConfig, source: str) -> Examples:
    """Map columns to task fields and check every row; rows whose label is in `skip_labels` are dropped."""
    mapping = _columns_for(task, config)
    available = set(dataset.column_names)
    wanted = [c for cols in mapping.values() for c in ([cols] if isinstance(cols, str) else cols)]
    if config.id_column:
        wanted.append(config.id_column)
    missing = [c for c in wanted if c not in available]
    if missing:
        raise DataError(f"{source}: column(s) {', '.join(map(repr, missing))} not found; the columns are "
                        f"{', '.join(sorted(available))} (map them with data.columns)")
    skip = {str(v) for v in config.skip_labels}
    fields = {name: [] for name in task.fields}
    labels, ids = [], []
    count = len(dataset) if not config.limit else min(config.limit, len(dataset))
    for row_number, row in enumerate(dataset.select(range(count))):
        where = f"{source} row {row_number}"
        raw_label = row[mapping["label"]]
        if str(raw_label) in skip:
            continue
        for name in task.fields:
            if name == "choices":
                columns = mapping[name]
                if isinstance(columns, str):  # one column holding a list of answers
                    answers = row[columns]
                    if not isinstance(answers, list) or len(answers) < 2:
                        raise DataError(f"{where}: column {columns!r} must hold a list of at least two answers")
                    answers = [_text({"a": a}, "a", f"{where} {columns}[{i}]", config.strip_html) for i, a in enumerate(answers)]
                else:
                    answers = [_text(row, c, where, config.strip_html) for c in columns]
                fields[name].append(answers)
            else:
                fields[name].append(_text(row, mapping[name], where, config.strip_html))
        label = _label_index(task, config, raw_label, f"{where} column {mapping['label']!r}")
        if task.kind == "multiple_choice" and not 0 <= label < len(fields["choices"][-1]):
            raise DataError(f"{where}: answer index {label} is beyond the {len(fields['choices'][-1])} answers")
        labels.append(label)
        ids.append(row[config.id_column] if config.id_column else row.get("id", row_number))
    if not labels:
        raise DataError(f"{source}: no usable rows")
    seen = {}
    for number, identifier in enumerate(ids):
        if identifier in seen:
            raise DataError(f"{source}: id {identifier!r} appears twice (rows {seen[identifier]} and {number})")
        seen[identifier] = number
    return Examples(fields, labels, ids, source)


def split_off_validation(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """(train, validation): a seeded random `fraction` of the rows held out."""
    order = np.random.default_rng([seed, 7]).permutation(len(examples))
    cut = max(1, int(round(len(examples) * fraction)))
    return (examples.subset(np.sort(order[cut:]), examples.source),
            examples.subset(np.sort(order[:cut]), f"{examples.source} (validation part)"))


# ----------------------------------------------------------------------------------------------- encoding

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


# ----------------------------------------------------------------------------------------------- batches

def default_buckets(max_length: int, smallest: int = 16, growth: float = 1.25, multiple: int = 8) -> tuple[int, ...]:
    """Batch lengths from `smallest` to `max_length`, each about `growth` times the one before.

    Each length compiles the training step once (unless `train.dynamic_length`), so the count trades
    compile time and, on CPU, memory against padding.
    Growth 1.25 gives 15 lengths up to 512 and, on IMDb-like lengths (benchmarks/bench.py), 7.5% padded
    tokens at micro-batch 8, 7.8% at 4 (1.15: 20 lengths, 5.4%; 1.4: 11 lengths, 10.1%; all padded to 512: 39%).
    """
    buckets = [min(smallest, max_length)]
    while buckets[-1] < max_length:
        nxt = int(math.ceil(buckets[-1] * growth / multiple) * multiple)
        buckets.append(min(max(nxt, buckets[-1] + multiple), max_length))
    return tuple(buckets)


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    for bucket in buckets:
        if length <= bucket:
            return bucket
    raise DataError(f"a sequence of {length} tokens exceeds the longest batch length {buckets[-1]}")


class TrainBatches:
    """The training micro-batches of one worker, bucketed by length, in an order fixed by (seed, epoch).

    Each epoch shuffles the examples, sorts them by length within windows of `window` global batches,
    cuts global batches (micro_batch x world_size examples), pads each to its bucket, and shuffles the
    batch order. Worker `rank` takes its rows of every global batch, so all workers run the same shapes
    and the workers together see exactly the batches one process would.
    """

    def __init__(self, encoded: Encoded, task: Task, micro_batch: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, buckets: Sequence[int] = (), pad_id: int = 0, window: int = 50):
        self.encoded, self.task = encoded, task
        self.micro_batch, self.rank, self.world_size = micro_batch, rank, world_size
        self.global_batch = micro_batch * world_size
        self.seed, self.window, self.pad_id = seed, window, pad_id
        self.buckets = tuple(buckets) or default_buckets(task.max_length)
        self.lengths = encoded.lengths
        self.num_batches = len(encoded) // self.global_batch
        self.choices = max(len(e) for e in encoded.sequences)  # S: fixed, so choices never add a shape

    def _global_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.encoded))
        span = self.global_batch * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.global_batch] for i in range(0, len(chunk) - self.global_batch + 1,
                                                                      self.global_batch)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches[:self.num_batches]

    def epoch(self, epoch: int) -> "_LazyBatches":
        return _LazyBatches(self, self._global_batches(epoch))

    def padding_share(self, epoch: int = 0) -> float:
        """Share of the computed token positions that are padding, over one epoch."""
        real = padded = 0
        for batch in self._global_batches(epoch):
            bucket = bucket_for(int(self.lengths[batch].max()), self.buckets)
            real += sum(len(s) for i in batch for s in self.encoded.sequences[i])
            padded += bucket * self.choices * len(batch)
        return 1.0 - real / max(padded, 1)


class _LazyBatches:
    """Packs a worker's micro-batch only when the trainer asks for it."""

    def __init__(self, source: TrainBatches, batches: list[np.ndarray]):
        self.source, self.batches = source, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self)))]
        s = self.source
        batch = self.batches[item]
        # The global batch decides the length, so every worker pads to the same shape.
        length = bucket_for(int(s.lengths[batch].max()), s.buckets)
        mine = batch[s.rank * s.micro_batch:(s.rank + 1) * s.micro_batch]
        return tuple(s.task.pack([s.encoded.sequences[i] for i in mine], s.encoded.labels[mine], pad_id=s.pad_id,
                                 length=length, num_sequences=s.choices))


def eval_batches(encoded: Encoded, task: Task, batch_size: int, buckets: Sequence[int] = (), pad_id: int = 0):
    """(batches, ids in batch order): examples sorted by length so each batch pads little."""
    buckets = tuple(buckets) or default_buckets(task.max_length)
    lengths = encoded.lengths
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        length = bucket_for(int(lengths[index].max()), buckets)
        batches.append(task.pack([encoded.sequences[i] for i in index], encoded.labels[index], pad_id=pad_id,
                                 length=length))
    return batches, [encoded.ids[i] for i in order]
