"""The fine-tuning recipe's outputs, read off one finished `gptft train` run (the `finished_run` fixture)."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from gptft import TaskModel
from gptft.model.layers import named_parameters
from gptft.training import checkpoints as ckpt


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_logs_validates_tests_and_writes_predictions_and_plots(finished_run):
    run = finished_run[0] / "run"
    logged = records(run)
    train = [r for r in logged if "split" not in r]
    assert set(train[0]) >= {"step", "loss", "task_loss", "lm_loss", "lr", "tokens_per_s"}
    assert all(r["loss"] == pytest.approx(r["task_loss"] + 0.5 * r["lm_loss"], rel=1e-5) for r in train)
    assert [(r["step"], r["split"]) for r in logged if "split" in r] == [(6, "validation"), (12, "validation"),
                                                                        (12, "test")]
    predictions = [json.loads(line) for line in (run / "predictions-test.jsonl").read_text().splitlines()]
    assert len(predictions) == 16 and set(predictions[0]) == {"id", "label", "probabilities"}
    assert sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    labels = [int(line.rsplit(",", 1)[1]) for line in (finished_run[0] / "test.csv").read_text().splitlines()[1:]]
    right = [p["label"] == ("positive" if labels[p["id"]] else "negative") for p in predictions]
    assert logged[-1]["accuracy"] == pytest.approx(np.mean(right))  # the test record is these predictions
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"


def test_exports_the_best_checkpoints_weights(finished_run):
    run = finished_run[0] / "run"
    validations = [r for r in records(run) if r.get("split") == "validation"]
    best = max(validations, key=lambda r: (r["accuracy"], -r["step"]))  # the first of equal scores wins
    saved = load_file(str(run / "checkpoints" / ckpt.checkpoint_name(best["step"]) / ckpt.STATE))
    model = TaskModel.from_pretrained(run / "model")
    exported = named_parameters(model, weights_only=True)
    assert len(exported) > 10
    for name, param in exported.items():  # the checkpoint names them by their path under the loss cell
        np.testing.assert_array_equal(param.asnumpy(), saved[f"model.{name}"], err_msg=name)
