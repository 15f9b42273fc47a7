"""Running a task model over batches: logits, predictions, metrics and prediction records.

    >>> result = evaluate(model, batches)           # batches whose labels are the truth
    >>> result.metrics["accuracy"]
    >>> write_predictions("predictions.jsonl", model.task, result.predictions, result.logits, ids)
"""

import json
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from mindspore import Tensor

from .formats import Batch
from .metrics import compute_metrics
from .task import Task
from .task_model import TaskModel


class Evaluation(NamedTuple):
    """What `evaluate` returns: `{metric: value}`, one prediction and one logits array per example."""

    metrics: dict
    predictions: np.ndarray
    logits: list


def _task_of(model: TaskModel) -> Task:
    if model.task is None:
        raise ValueError("this TaskModel was built without its Task; build it with TaskModel.for_task")
    return model.task


def predict_logits(model: TaskModel, batches: Sequence[Batch]) -> list[np.ndarray]:
    """Task logits of every example, in batch order (one array per example; multiple choice varies in K)."""
    multiple_choice = _task_of(model).kind == "multiple_choice"
    model.set_train(False)
    logits = []
    for batch in batches:
        out = model(Tensor(batch.ids), Tensor(batch.positions)).asnumpy()
        for row, positions in zip(out, batch.positions):
            # Drop padded choices, so an example's scores are exactly its own answers.
            logits.append(row[positions >= 0] if multiple_choice else row)
    return logits


def predictions_of(task: Task, logits: Sequence[np.ndarray]) -> np.ndarray:
    """One prediction per example: the class or answer index, or the score for regression."""
    return np.array([task.predict(row[None])[0] for row in logits])


def evaluate(model: TaskModel, batches: Sequence[Batch]) -> Evaluation:
    """Metrics, predictions and logits of `model` (its own task's metrics) over `batches`."""
    task = _task_of(model)
    logits = predict_logits(model, batches)
    predictions = predictions_of(task, logits)
    labels = np.concatenate([batch.labels for batch in batches])
    return Evaluation(compute_metrics(task.metric_names, predictions, labels), predictions, logits)


def prediction_records(task: Task, predictions: np.ndarray, logits: Sequence[np.ndarray],
                       ids: Sequence | None = None) -> list[dict]:
    """One record per example: `id`, then `label` and `probabilities` (classes), `score` (regression), or
    `answer` and `probabilities` (multiple choice)."""
    records = []
    for i, (prediction, row) in enumerate(zip(predictions, logits)):
        record = {"id": ids[i] if ids is not None else i}
        if task.labels:
            record["label"] = task.labels[int(prediction)]
            record["probabilities"] = dict(zip(task.labels, task.probabilities(row[None])[0].round(6).tolist()))
        elif task.is_regression:
            record["score"] = float(prediction)
        else:
            record["answer"] = int(prediction)
            record["probabilities"] = task.probabilities(row[None])[0].round(6).tolist()
        records.append(record)
    return records


def write_predictions(path, task: Task, predictions: np.ndarray, logits: Sequence[np.ndarray],
                      ids: Sequence | None = None) -> list[dict]:
    """Write `prediction_records` as JSON lines and return them."""
    records = prediction_records(task, predictions, logits, ids)
    with open(Path(path), "w") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    return records
