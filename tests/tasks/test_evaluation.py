import json

import numpy as np
import pytest

from gptft import GPT, GPTConfig, TaskModel
from gptft.tasks import Task
from gptft.tasks.evaluation import evaluate, predict_logits, prediction_records, write_predictions
from gptft.tasks.formats import TaskTokens
from helpers import FakeTokenizer

TOKENS = TaskTokens(99, 100, 101)


def batches_of(task, examples, labels, size):
    formatted = [task.format(example, TOKENS) for example in examples]
    return [task.pack(formatted[i:i + size], labels[i:i + size]) for i in range(0, len(formatted), size)]


def test_multiple_choice_drops_padded_answers_and_metrics_use_the_true_labels(rng):
    task = Task("multiple_choice")
    model = TaskModel.for_task(GPT(GPTConfig.preset("tiny"), seed=0), task, FakeTokenizer())
    examples = [{"context": list(rng.integers(0, 99, 4)), "choices": [list(rng.integers(0, 99, 2)) for _ in range(k)]}
                for k in (2, 4, 3, 4)]
    batches = batches_of(task, examples, [1, 3, 0, 2], size=2)
    logits = predict_logits(model, batches)
    assert [len(row) for row in logits] == [2, 4, 3, 4]
    result = evaluate(model, batches)
    np.testing.assert_array_equal(result.predictions, [row.argmax() for row in logits])
    assert result.metrics == {"accuracy": float(np.mean(result.predictions == np.array([1, 3, 0, 2])))}


def test_records_name_labels_scores_or_answers(tmp_path):
    classes = Task("classification", labels=("neg", "pos"))
    records = prediction_records(classes, np.array([1]), [np.array([0.0, np.log(3.0)])], ids=["r7"])
    assert records == [{"id": "r7", "label": "pos", "probabilities": {"neg": 0.25, "pos": 0.75}}]
    scores = prediction_records(Task("similarity"), np.array([0.5]), [np.array([0.5])])
    assert scores == [{"id": 0, "score": 0.5}]
    answers = write_predictions(tmp_path / "p.jsonl", Task("multiple_choice"), np.array([0]),
                                [np.array([0.0, 0.0])])
    assert answers == [{"id": 0, "answer": 0, "probabilities": [0.5, 0.5]}]
    assert json.loads((tmp_path / "p.jsonl").read_text()) == answers[0]


def test_a_model_without_its_task_is_refused():
    model = TaskModel(GPT(GPTConfig.preset("tiny")), Task("similarity").build_head(32))
    with pytest.raises(ValueError, match="built without its Task"):
        predict_logits(model, [])
