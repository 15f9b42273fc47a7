"""Evaluation metrics on NumPy predictions: the ones the GPT-1 paper reports per task.

Accuracy (SST-2, SNLI, RACE), F1 (MRPC, QQP), Matthews correlation (CoLA), Pearson and Spearman
correlation (STS-B). Correlations come from scipy; the others are read off the confusion matrix.
"""

from typing import Callable

import numpy as np

from ..errors import ConfigError


def confusion_matrix(predictions, labels, num_classes: int | None = None) -> np.ndarray:
    """Counts `[true, predicted]`."""
    predictions, labels = np.asarray(predictions, np.int64), np.asarray(labels, np.int64)
    k = num_classes or int(max(predictions.max(initial=0), labels.max(initial=0))) + 1
    return np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)


def accuracy(predictions, labels) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def _f1_per_class(matrix: np.ndarray) -> np.ndarray:
    true_positive = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    denominator = predicted + actual
    # F1 = 2TP / (2TP + FP + FN); a class never predicted nor present scores 0, as in scikit-learn.
    return np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)


def f1(predictions, labels) -> float:
    """Binary F1 of class 1 (the positive class)."""
    return float(_f1_per_class(confusion_matrix(predictions, labels, 2))[1])


def macro_f1(predictions, labels) -> float:
    """Unweighted mean of the per-class F1 over every class that occurs in labels or predictions."""
    matrix = confusion_matrix(predictions, labels)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(_f1_per_class(matrix)[present].mean())


def matthews_corrcoef(predictions, labels) -> float:
    """Matthews correlation (the multi-class form of Gorodkin 2004); 0 when undefined."""
    matrix = confusion_matrix(predictions, labels).astype(np.float64)
    total, correct = matrix.sum(), np.trace(matrix)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    numerator = correct * total - predicted @ actual
    denominator = np.sqrt((total**2 - predicted @ predicted) * (total**2 - actual @ actual))
    return float(numerator / denominator) if denominator > 0 else 0.0


def _correlation(function, predictions, labels) -> float:
    predictions, labels = np.asarray(predictions, np.float64), np.asarray(labels, np.float64)
    if len(labels) < 2 or np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return float("nan")  # undefined for constant input
    return float(function(predictions, labels)[0])


# scipy is imported where it is used: most runs never need a correlation, and every process would pay
# for the import.
def pearson(predictions, labels) -> float:
    from scipy import stats

    return _correlation(stats.pearsonr, predictions, labels)


def spearman(predictions, labels) -> float:
    from scipy import stats

    return _correlation(stats.spearmanr, predictions, labels)


METRICS: dict[str, Callable] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def check_metric_names(names) -> None:
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(sorted(METRICS))}")


def compute_metrics(names, predictions, labels) -> dict[str, float]:
    """`{name: value}` for each metric name."""
    check_metric_names(names)
    return {name: METRICS[name](predictions, labels) for name in names}
