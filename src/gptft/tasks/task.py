"""A `Task` ties an input format to its head, loss, metrics and label set.

The kind picks the format (`classification`, `entailment`, `similarity`, `multiple_choice`); without
labels a classification, entailment or similarity task is a regression (one score, mean squared error,
Pearson/Spearman), as STS-B is. Everything else has a default from the paper and can be overridden.
"""

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import formats
from ..errors import ConfigError
from .metrics import check_metric_names

# The token fields each kind reads from an example (after tokenization).
FIELDS = {
    "classification": ("text",),
    "entailment": ("premise", "hypothesis"),
    "similarity": ("text_a", "text_b"),
    "multiple_choice": ("context", "choices"),
}


@dataclass(frozen=True)
class Task:
    """What to predict and how: the input format, the labels, and the head, loss and metrics they imply.

    Example:
        >>> sst2 = Task("classification", labels=("negative", "positive"), max_length=128)
        >>> stsb = Task("similarity")                         # scores: regression, Pearson/Spearman
        >>> swag = Task("multiple_choice", max_length=96)
    """

    kind: str
    """The input format: classification, entailment, similarity or multiple_choice."""
    labels: tuple[str, ...] | None = None
    """Class names in index order; none for scores (regression) and for multiple choice (the label is the
    right answer's index)."""
    head: str | None = None
    """A registered head name; default by kind (classification, regression, similarity, multiple_choice)."""
    loss: str | None = None
    """cross_entropy or mse; default by labels."""
    metrics: tuple[str, ...] | None = None
    """Metric names (accuracy, f1, macro_f1, mcc, pearson, spearman), the first picking the best checkpoint;
    default by kind."""
    max_length: int = 512
    """The longest token sequence, special tokens included."""
    truncation: str | None = None
    """A single text keeps its head, tail or head_tail (default); a pair is cut longest_first (default) or
    only in its first part (see gptft.tasks.formats)."""

    def __post_init__(self):
        if self.kind not in FIELDS:
            raise ConfigError(f"unknown task kind {self.kind!r}; choose one of {', '.join(FIELDS)}")
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
            if self.kind == "multiple_choice":
                raise ConfigError("a multiple_choice task takes no labels: its label is the right answer's index")
            if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
                raise ConfigError(f"task labels must be at least two distinct names, got {list(self.labels)}")
        if self.metrics is not None:
            object.__setattr__(self, "metrics", tuple(self.metrics))
            if not self.metrics:
                raise ConfigError("task metrics must name at least one metric")
            check_metric_names(self.metrics)
        if self.loss is not None:
            from .losses import LOSSES

            if self.loss not in LOSSES:
                raise ConfigError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        allowed = formats.TRUNCATIONS if self.kind == "classification" else formats.PAIR_TRUNCATIONS
        if self.truncation is not None and self.truncation not in allowed:
            raise ConfigError(f"unknown truncation {self.truncation!r} for a {self.kind} task; choose one of "
                              f"{', '.join(allowed)}")
        if not isinstance(self.max_length, int) or self.max_length < 4:
            raise ConfigError(f"task max_length must be an integer of at least 4, got {self.max_length!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "Task":
        """A Task from its `dataclasses.asdict` form, as `task.json` holds it (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @property
    def is_regression(self) -> bool:
        return self.kind != "multiple_choice" and self.labels is None

    @property
    def num_outputs(self) -> int:
        return len(self.labels) if self.labels else 1

    @property
    def head_name(self) -> str:
        if self.head:
            return self.head
        if self.kind in ("similarity", "multiple_choice"):
            return self.kind
        return "regression" if self.is_regression else "classification"

    @property
    def loss_name(self) -> str:
        return self.loss or ("mse" if self.is_regression else "cross_entropy")

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.metrics:
            return self.metrics
        if self.is_regression:
            return ("pearson", "spearman")
        if self.kind == "multiple_choice":
            return ("accuracy",)
        return ("accuracy", "f1") if self.num_outputs == 2 else ("accuracy", "macro_f1")

    @property
    def truncation_mode(self) -> str:
        return self.truncation or ("head_tail" if self.kind == "classification" else "longest_first")

    @property
    def fields(self) -> tuple[str, ...]:
        return FIELDS[self.kind]

    @property
    def label_dtype(self):
        return np.float32 if self.is_regression else np.int32

    def format(self, example: dict, tokens: formats.TaskTokens) -> list[list[int]]:
        """The token sequences of one example, whose fields (`Task.fields`) hold token ids."""
        mode = self.truncation_mode
        if self.kind == "classification":
            return formats.classification(example["text"], tokens, self.max_length, mode)
        if self.kind == "entailment":
            return formats.entailment(example["premise"], example["hypothesis"], tokens, self.max_length, mode)
        if self.kind == "similarity":
            return formats.similarity(example["text_a"], example["text_b"], tokens, self.max_length, mode)
        return formats.multiple_choice(example["context"], example["choices"], tokens, self.max_length, mode)

    def build_head(self, n_embd: int, dropout: float = 0.1):
        from .heads import head_factory

        return head_factory(self.head_name)(n_embd, self.num_outputs, dropout)

    def loss_fn(self):
        from .losses import LOSSES

        return LOSSES[self.loss_name]

    def predict(self, logits: np.ndarray) -> np.ndarray:
        """Predictions from logits: the class (or answer) index, or the score for regression."""
        if self.loss_name == "mse":
            return logits.reshape(-1)
        return logits.argmax(axis=-1)

    def probabilities(self, logits: np.ndarray) -> np.ndarray | None:
        """Softmax of the logits for class and answer predictions; None for regression."""
        if self.loss_name == "mse":
            return None
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def pack(self, examples: Sequence[Sequence[Sequence[int]]], labels, *, pad_id: int = 0,
             length: int | None = None, num_sequences: int | None = None) -> formats.Batch:
        return formats.pack(examples, labels, pad_id=pad_id, length=length, num_sequences=num_sequences,
                            label_dtype=self.label_dtype)
