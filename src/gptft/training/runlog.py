"""What a run writes for people: `metrics.jsonl`, the learning-curve PNG and the confusion-matrix PNG.

`metrics.jsonl` holds one JSON object per line: training records (`step`, `epoch`, `lr`, `tokens_per_s`,
`grad_norm` and each loss part the training step reports, e.g. `loss`, `task_loss`, `lm_loss`) and
evaluation records (`step`, `split` and each metric).
"""

import json
import os
from pathlib import Path

import numpy as np


class RunLog:
    """Appends records to `metrics.jsonl`; silent where `enabled` is False (workers other than rank 0)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, default=float) + "\n")

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash; every complete line is kept
        return records

    def truncate_after(self, step: int) -> None:
        """Drop records newer than `step`: on resume they belong to the rolled-back part of the run."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [r for r in self.records() if r.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(records: list[dict], path: Path, loss_names=("loss",), title: str = "") -> None:
    """The training losses `loss_names` and every validation metric against the step, in one PNG."""
    plt = _pyplot()
    train = [r for r in records if "split" not in r]
    evals = [r for r in records if r.get("split") == "validation"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in loss_names:
        points = [(r["step"], r[key]) for r in train if r.get(key) is not None]
        if points:
            left.plot(*zip(*points), label=key)
    left.set(xlabel="step", ylabel="training loss", title="training loss")
    left.legend()
    metrics = sorted({k for r in evals for k in r if k not in ("step", "split", "epoch")})
    for metric in metrics:
        points = [(r["step"], r[metric]) for r in evals if isinstance(r.get(metric), (int, float))]
        if points:
            right.plot(*zip(*points), marker="o", label=metric)
    right.set(xlabel="step", ylabel="value", title="validation")
    if metrics:
        right.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_confusion_matrix(matrix: np.ndarray, labels, path: Path, title: str = "") -> None:
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.2 * len(labels) + 2))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
