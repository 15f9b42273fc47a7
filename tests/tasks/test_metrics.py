import math

import numpy as np
import pytest
from scipy import stats

from gptft.errors import ConfigError
from gptft.tasks.metrics import (accuracy, compute_metrics, confusion_matrix, f1, macro_f1, matthews_corrcoef, pearson,
                           spearman)

PRED = np.array([1, 1, 0, 1, 0, 0, 1, 1])
TRUE = np.array([1, 0, 0, 1, 1, 0, 1, 1])
# TP=4 (0,3,6,7), FP=1 (1), FN=1 (4), TN=2 (2,5)


def test_accuracy_and_confusion_matrix():
    assert accuracy(PRED, TRUE) == 6 / 8
    np.testing.assert_array_equal(confusion_matrix(PRED, TRUE), [[2, 1], [1, 4]])


def test_binary_f1_and_mcc_match_their_definitions():
    assert f1(PRED, TRUE) == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    expected_mcc = (4 * 2 - 1 * 1) / math.sqrt((4 + 1) * (4 + 1) * (2 + 1) * (2 + 1))
    assert matthews_corrcoef(PRED, TRUE) == pytest.approx(expected_mcc)
    assert matthews_corrcoef([1, 1, 1], [0, 1, 1]) == 0.0  # undefined (one predicted class)


def test_macro_f1_averages_the_classes():
    pred, true = [0, 1, 2, 2, 1], [0, 1, 1, 2, 2]
    per_class = [1.0, 2 * 1 / (2 * 1 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 1)]
    assert macro_f1(pred, true) == pytest.approx(np.mean(per_class))


def test_correlations_come_from_scipy_and_handle_constants():
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    y = np.array([0.0, 0.5, 0.3, 0.7, 1.0])
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    assert spearman(x, y**3) == pytest.approx(spearman(x, y))  # rank-based
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_compute_metrics_by_name():
    assert compute_metrics(["accuracy", "f1"], PRED, TRUE) == {"accuracy": 0.75, "f1": pytest.approx(0.8)}
    with pytest.raises(ConfigError, match="unknown metric"):
        compute_metrics(["auc"], PRED, TRUE)
