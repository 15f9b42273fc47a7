import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from gptft import GPT, GPTConfig
from gptft.config import TrainConfig
from gptft.errors import ConfigError
from gptft.finetune import build_task_model, finetune, make_train_step
from gptft.formats import Batch
from gptft.device import Placement, memory_in_use
from gptft.layers import named_parameters
from gptft.optim import AdamW
from gptft.tasks import Task
from gptft import trainer as trainer_module
from gptft.trainer import ListSource, Trainer, TrainingDiverged
from gptft.train_step import TrainStep
from synthetic import dataset, keyword

TASK = Task("classification", labels=("no", "yes"))
PLACEMENT = Placement("CPU", "graph", "float32")


class Vocab:
    vocab_size = 102


def build(seed=0, **overrides):
    """A tiny task model with dropout on, its train step, and 8 batches of keyword data."""
    ms.set_context(mode=ms.GRAPH_MODE)
    config = TrainConfig(**{"lr": 1e-3, "batch_size": 8, "epochs": 2, "log_every": 1, "seed": seed, **overrides})
    model = build_task_model(GPT(GPTConfig.preset("tiny", vocab_size=99), seed=seed), TASK, Vocab(), seed=seed)
    train, validation = dataset(TASK, keyword, n=64, seed=5, batch_size=8, length=12)
    return model, make_train_step(model, TASK, config, PLACEMENT), config, ListSource(train.batches, seed=seed), validation


def weights(model):
    return {name: p.asnumpy().copy() for name, p in named_parameters(model).items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_same_seed_same_run_and_another_seed_another(tmp_path):
    runs = []
    for index, seed in enumerate((0, 0, 1)):
        model, step, config, data, _ = build(seed)
        Trainer(step, config, tmp_path / str(index)).fit(data)
        runs.append(weights(model))
    assert_same_weights(runs[0], runs[1])
    assert not np.array_equal(runs[0]["backbone.h.0.attn.c_attn.weight"], runs[2]["backbone.h.0.attn.c_attn.weight"])


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_ends_with_identical_weights(tmp_path):
    model, step, config, data, _ = build(0, save_every=3)
    Trainer(step, config, tmp_path / "whole").fit(data)
    uninterrupted = weights(model)

    def stop_at_seven(record):
        if record["step"] == 7:
            raise Interrupt

    model, step, config, data, _ = build(0, save_every=3)
    with pytest.raises(Interrupt):
        Trainer(step, config, tmp_path / "cut", on_log=stop_at_seven).fit(data)
    model, step, config, data, _ = build(0, save_every=3)  # a fresh start, as after a crash
    state = Trainer(step, config, tmp_path / "cut").fit(data, resume=True)
    assert state["step"] == 16
    assert_same_weights(weights(model), uninterrupted)
    steps = [r["step"] for r in map(json.loads, (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(1, 17))  # the rolled-back step 7 is logged once


def test_existing_checkpoints_need_resume_and_resume_needs_a_checkpoint(tmp_path):
    model, step, config, data, _ = build(0, epochs=1)
    with pytest.raises(ConfigError, match="holds no usable checkpoint"):
        Trainer(step, config, tmp_path).fit(data, resume=True)
    Trainer(step, config, tmp_path).fit(data)
    metrics = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already holds checkpoints.*--resume"):
        Trainer(step, config, tmp_path).fit(data)
    assert (tmp_path / "metrics.jsonl").read_text() == metrics  # nothing overwritten


class PoisonLoss(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.ones(3, np.float32)), name="w")

    def construct(self, x):
        loss = (self.w * x).sum()
        return loss, loss, loss * 0


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    ms.set_context(mode=ms.GRAPH_MODE)
    loss = PoisonLoss()
    optimizer = AdamW(loss.trainable_params())
    batches = [(np.ones(3, np.float32),)] * 4 + [(np.array([1, np.nan, 1], np.float32),)] + [(np.ones(3, np.float32),)] * 3
    config = TrainConfig(batch_size=1, epochs=1, save_every=2, lr=0.01)

    class InOrder(ListSource):
        def epoch(self, epoch):
            return self.batches

    with pytest.raises(TrainingDiverged, match="the loss became nan at step 5"):
        Trainer(TrainStep(loss, optimizer), config, tmp_path).fit(InOrder(batches))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]


def test_early_stopping_after_patience_evaluations(tmp_path):
    model, step, config, data, _ = build(0, epochs=6, eval_every=2, patience=2, keep_last=1)
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.9])
    state = Trainer(step, config, tmp_path, evaluate=lambda: {"accuracy": next(scores)}).fit(data)
    assert state["step"] == 8 and state["best_step"] == 4 and state["best_value"] == 0.7
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step-00000004", "step-00000008"]  # the best and the last


def test_finetune_writes_logs_predictions_plots_and_model(tmp_path):
    model, _, config, data, validation = build(0, epochs=2)
    result = finetune(model, TASK, data, validation, config, tmp_path, test=validation, tokenizer=None)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "split" not in r]
    assert set(train[0]) >= {"step", "loss", "task_loss", "lm_loss", "lr", "tokens_per_s"}
    assert all(r["loss"] == pytest.approx(r["task_loss"] + 0.5 * r["lm_loss"], rel=1e-5) for r in train)
    assert [r["split"] for r in records if "split" in r] == ["validation", "validation", "test"]
    assert records[-1]["accuracy"] == result["test"]["accuracy"]
    predictions = [json.loads(line) for line in (tmp_path / "predictions-test.jsonl").read_text().splitlines()]
    assert len(predictions) == 16 and set(predictions[0]) == {"id", "label", "probabilities"}
    assert sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "model" / "head.safetensors").is_file()


def padded(batches, extra):
    """The same batches right-padded by extra[i] tokens: new lengths, the same examples and losses."""
    return [Batch(np.pad(b.ids, ((0, 0), (0, 0), (0, n))), b.positions,
                  np.pad(b.lm_mask, ((0, 0), (0, 0), (0, n))), b.labels) for b, n in zip(batches, extra)]


def test_dynamic_length_fine_tunes_and_evaluates_like_one_graph_per_length(tmp_path):
    results = []
    for index, dynamic in enumerate((False, True)):
        model, _, config, data, validation = build(0, epochs=1, dynamic_length=dynamic)
        data = ListSource(padded([Batch(*b) for b in data.batches], [0, 4, 9, 0, 4, 9, 0, 4]), seed=0)
        validation = padded(validation, [3, 0])
        result = finetune(model, TASK, data, validation, config, tmp_path / str(index), test=validation)
        results.append((weights(model), result["test"]))
    (static_weights, static_test), (dynamic_weights, dynamic_test) = results
    assert dynamic_test == static_test
    for name in static_weights:
        np.testing.assert_allclose(dynamic_weights[name], static_weights[name], atol=2e-6, err_msg=name)
    assert len(model.compile_cache) == 1  # validation and test batches of two lengths, one graph


@pytest.mark.parametrize("dynamic", [False, True])
def test_warns_once_when_the_graphs_of_new_lengths_fill_the_memory(tmp_path, monkeypatch, capsys, dynamic):
    resident, total = memory_in_use()  # the real numbers first
    assert 0.05 < resident < total
    calls = []

    def filling_up():  # each new length's graph adds 2.5 GB on a 10 GB machine
        calls.append(None)
        return 2.5 * len(calls), 10.0

    monkeypatch.setattr(trainer_module, "memory_in_use", filling_up)
    model, step, config, data, _ = build(0, epochs=1, dynamic_length=dynamic)
    data = ListSource(padded([Batch(*b) for b in data.batches], [0, 1, 2, 3, 4, 0, 1, 2]), seed=0)
    Trainer(step, config, tmp_path).fit(data)
    out = capsys.readouterr().out
    if dynamic:
        assert not calls and "warning" not in out  # one graph: nothing to watch
    else:
        assert len(calls) == 3  # checked at each new length until the warning, then never again
        assert out.count("warning: the process holds 7.5 of the machine's 10.0 GB after compiling the step "
                         "for 3 batch shapes") == 1
        assert "set train.dynamic_length: true" in out
