"""From a dataset (hub name or local files) to checked examples of a task.

`load_split` reads one split with `datasets`: a hub dataset (`stanfordnlp/imdb`, `glue`/`sst2`), or a local
csv, json/jsonl or parquet file, or the `aclImdb` folder layout (`{train,test}/{pos,neg}/*.txt`).
`read_examples` maps the dataset's columns to the task's fields and checks every row: a missing column, an
empty text, a label outside the task's labels, a non-number score, an answer index beyond the answers and
a duplicated id are each a `DataError` naming the split, row and column. `load_task_splits` does both for
the train, validation and test splits of a `DataConfig`, carving validation out of train when needed.
"""

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..tasks.task import Task
from .config import DataConfig

LOCAL_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


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




def load_task_splits(config: DataConfig, task: Task, seed: int) -> dict:
    """`{"train", "validation", "test"}` Examples (test None when the config names none); validation is
    carved from train, seeded, when the data has no validation split."""
    def read(split: str, name: str) -> Examples:
        return read_examples(load_split(config, split), task, config, f"{name} split ({split})")

    splits = {"train": read(config.train, "train")}
    if config.validation:
        splits["validation"] = read(config.validation, "validation")
    else:
        splits["train"], splits["validation"] = split_off_validation(splits["train"], config.validation_fraction, seed)
    splits["test"] = read(config.test, "test") if config.test else None
    return splits
