import numpy as np
import pytest

from gptft.errors import ConfigError
from gptft.tasks.formats import TaskTokens
from gptft.tasks import Task

TOKENS = TaskTokens(99, 100, 101)


def test_defaults_follow_the_kind():
    sst2 = Task("classification", labels=("negative", "positive"))
    assert (sst2.head_name, sst2.loss_name, sst2.metric_names, sst2.num_outputs) == (
        "classification", "cross_entropy", ("accuracy", "f1"), 2)
    mnli = Task("entailment", labels=("entailment", "neutral", "contradiction"))
    assert mnli.head_name == "classification" and mnli.metric_names == ("accuracy", "macro_f1")
    stsb = Task("similarity")
    assert (stsb.is_regression, stsb.head_name, stsb.loss_name, stsb.metric_names) == (
        True, "similarity", "mse", ("pearson", "spearman"))
    qqp = Task("similarity", labels=("different", "duplicate"))
    assert qqp.head_name == "similarity" and qqp.loss_name == "cross_entropy"
    score = Task("classification")
    assert score.head_name == "regression" and score.label_dtype == np.float32
    swag = Task("multiple_choice")
    assert (swag.head_name, swag.metric_names, swag.is_regression) == ("multiple_choice", ("accuracy",), False)
    cola = Task("classification", labels=("bad", "good"), metrics=("mcc", "accuracy"))
    assert cola.metric_names == ("mcc", "accuracy")


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "translation"}, "unknown task kind 'translation'"),
    ({"kind": "multiple_choice", "labels": ("a", "b")}, "takes no labels"),
    ({"kind": "classification", "labels": ("a",)}, "at least two distinct"),
    ({"kind": "classification", "labels": ("a", "a")}, "at least two distinct"),
    ({"kind": "classification", "metrics": ("auc",)}, "unknown metric"),
    ({"kind": "classification", "loss": "hinge"}, "unknown loss 'hinge'"),
    ({"kind": "classification", "truncation": "middle"}, "unknown truncation"),
    ({"kind": "classification", "max_length": 2}, "max_length"),
])
def test_invalid_tasks_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Task(**kwargs)


def test_format_dispatches_on_kind():
    assert Task("entailment").format({"premise": [1], "hypothesis": [2]}, TOKENS) == [[99, 1, 100, 2, 101]]
    assert len(Task("similarity").format({"text_a": [1], "text_b": [2]}, TOKENS)) == 2
    assert len(Task("multiple_choice").format({"context": [1], "choices": [[2], [3], [4]]}, TOKENS)) == 3
    assert Task("classification", max_length=5, truncation="tail").format({"text": [1, 2, 3, 4, 5]}, TOKENS) == [
        [99, 3, 4, 5, 101]]


def test_predictions_and_probabilities():
    task = Task("classification", labels=("a", "b", "c"))
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    np.testing.assert_array_equal(task.predict(logits), [1, 0])
    probs = task.probabilities(logits)
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    assert probs[0].argmax() == 1
    regression = Task("similarity")
    np.testing.assert_array_equal(regression.predict(np.array([[0.3], [0.9]])), [0.3, 0.9])
    assert regression.probabilities(np.array([[0.3]])) is None
