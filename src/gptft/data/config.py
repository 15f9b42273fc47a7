"""The data sections of a run's YAML: where labeled examples or unlabeled text come from.

Each field's docstring is its documentation (the README's schema is generated from it).
"""

from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how their columns map to the task's fields."""

    dataset: str = ""
    """A hub dataset name (`stanfordnlp/imdb`, `glue`), or a local folder (csv/json/jsonl/parquet files, or
    the `aclImdb` layout); empty when each split names its own file."""
    subset: str = ""
    """The hub dataset's configuration (`sst2` of `glue`)."""
    train: str = "train"
    """The training split: a split name of `dataset`, or a local file or folder."""
    validation: str = ""
    """The validation split; empty carves `validation_fraction` of train (seeded) instead."""
    test: str = ""
    """The test split, used only for the final report; empty for none."""
    validation_fraction: float = 0.1
    """Share of train held out for validation when no validation split is given."""
    columns: dict = field(default_factory=dict)
    """Task field -> column name (or a list of columns: joined with spaces for text, one per answer for
    `choices`). Fields not listed are read from columns of the same name."""
    label_values: tuple = ()
    """The dataset's label values in task-label order, when they are neither 0..n-1 nor the label names."""
    skip_labels: tuple = ()
    """Rows with these label values are dropped (SNLI marks examples without a gold label -1)."""
    id_column: str = ""
    """A column of example ids for the predictions file; default the row number."""
    strip_html: bool = False
    """Replace HTML line breaks (`<br />`) with spaces; IMDb reviews are full of them."""
    buckets: tuple = ()
    """Batch lengths; each batch is padded to the smallest that fits. Default: a geometric set up to
    task.max_length (one compiled step per length, or one for all with train.dynamic_length)."""
    eval_batch_size: int = 0
    """Examples per evaluation batch; 0 means twice the training micro-batch."""
    limit: int = 0
    """Use only the first N examples of each split (0: all); for quick trials."""
    cache_dir: str = ""
    """Where tokenized examples are cached; default ~/.cache/gptft (or $GPTFT_CACHE)."""

    def __post_init__(self):
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not self.validation and self.validation_fraction == 0:
            raise ConfigError("data: give a validation split or a validation_fraction above 0 "
                              "(never evaluate on the training split)")
        for name in ("eval_batch_size", "limit"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        if any(not isinstance(b, int) or b < 4 for b in self.buckets) or list(self.buckets) != sorted(set(self.buckets)):
            raise ConfigError(f"data.buckets must be increasing integers of at least 4, got {list(self.buckets)}")


@dataclass(frozen=True)
class TextData:
    """Unlabeled text: files (one document per line, or `whole_files`), or a column of a dataset split."""

    files: tuple[str, ...] = ()
    """Local text files (.txt, optionally .gz)."""
    whole_files: bool = False
    """Treat each file as one document instead of one document per line."""
    dataset: str = ""
    """A hub dataset or local csv/json/parquet file, read through `datasets`."""
    subset: str = ""
    """The hub dataset's configuration, if it has several."""
    split: str = "train"
    """The dataset split to read."""
    column: str = "text"
    """The column holding the text."""
    validation_fraction: float = 0.05
    """Share of the blocks held out to measure validation loss."""
    limit: int = 0
    """Use only the first N documents (0: all)."""

    def __post_init__(self):
        if bool(self.files) == bool(self.dataset):
            raise ConfigError("data: give either `files` or `dataset`")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction must be in (0, 1), got {self.validation_fraction}")
