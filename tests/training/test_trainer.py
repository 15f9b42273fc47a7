import json
import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from gptft import GPT, GPTConfig
from gptft.commands.finetune import task_train_step
from gptft.errors import ConfigError
from gptft.model.layers import named_parameters
from gptft.tasks import Task
from gptft.tasks.formats import Batch
from gptft.tasks.task_model import TaskModel
from gptft.training import trainer as trainer_module
from gptft.training.config import TrainConfig
from gptft.training.device import memory_in_use
from gptft.training.optim import AdamW
from gptft.training.step import TrainStep
from gptft.training.trainer import ListSource, Trainer, TrainingDiverged
from helpers import FakeTokenizer, fit_and_evaluate
from synthetic import dataset, keyword

TASK = Task("classification", labels=("no", "yes"))


def build(seed=0, **overrides):
    """A tiny task model with dropout on, its train step, and 8 batches of keyword data."""
    ms.set_context(mode=ms.GRAPH_MODE)
    config = TrainConfig(**{"lr": 1e-3, "batch_size": 8, "epochs": 2, "log_every": 1, "seed": seed, **overrides})
    model = TaskModel.for_task(GPT(GPTConfig.preset("tiny", vocab_size=99), seed=seed), TASK, FakeTokenizer(), seed=seed)
    train, validation = dataset(TASK, keyword, n=64, seed=5, batch_size=8, length=12)
    return model, task_train_step(model, config), config, ListSource(train.batches, seed=seed), validation


def weights(model):
    return {name: p.asnumpy().copy() for name, p in named_parameters(model).items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class Interrupt(Exception):
    pass


def test_same_seed_same_run_even_across_an_interruption_and_another_seed_another(tmp_path):
    model, step, config, data, _ = build(0, save_every=3)
    Trainer(step, config, tmp_path / "whole").fit(data)
    uninterrupted = weights(model)
    model, step, config, data, _ = build(1, save_every=3)
    Trainer(step, config, tmp_path / "seed 1").fit(data)
    assert not np.array_equal(weights(model)["backbone.h.0.attn.c_attn.weight"],
                              uninterrupted["backbone.h.0.attn.c_attn.weight"])

    def stop_at_seven(record):
        if record["step"] == 7:
            raise Interrupt

    model, step, config, data, _ = build(0, save_every=3)
    with pytest.raises(Interrupt):
        Trainer(step, config, tmp_path / "cut", on_log=stop_at_seven).fit(data)
    model, step, config, data, _ = build(0, save_every=3)  # a fresh start, as after a crash
    progress = Trainer(step, config, tmp_path / "cut").fit(data, resume=True)
    assert progress.step == 16
    # The same seed: the interrupted run's first six steps (its checkpoint), and so its end, are the whole run's.
    assert_same_weights(weights(model), uninterrupted)
    steps = [r["step"] for r in map(json.loads, (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(1, 17))  # the rolled-back step 7 is logged once


def test_existing_checkpoints_need_resume_and_resume_without_one_starts_at_step_0(tmp_path, capsys):
    model, step, config, data, _ = build(0, epochs=1)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n')  # an attempt that died before saving
    progress = Trainer(step, config, tmp_path).fit(data, resume=True)
    assert f"--resume: no checkpoint in {tmp_path / 'checkpoints'} yet; starting the run from step 0" in \
        capsys.readouterr().out
    metrics = (tmp_path / "metrics.jsonl").read_text()
    assert progress.step == data.num_batches // config.grad_accum
    assert '"loss": 9.0' not in metrics  # the dead attempt's records were dropped
    with pytest.raises(ConfigError, match="holds another run's checkpoints.*--resume"):
        Trainer(step, config, tmp_path).fit(data)
    assert (tmp_path / "metrics.jsonl").read_text() == metrics  # nothing overwritten


class PoisonLoss(nn.Cell):
    loss_names = ("loss", "same", "zero")

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
    progress = Trainer(step, config, tmp_path, evaluate=lambda: {"accuracy": next(scores)}).fit(data)
    assert progress.step == 8 and progress.best_step == 4 and progress.best_value == 0.7
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step-00000004", "step-00000008"]  # the best and the last


def test_logs_each_loss_part_under_its_name_and_restores_the_best_weights(tmp_path):
    model, step, config, data, _ = build(0, epochs=3, eval_every=4, keep_last=1)
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.8, 0.1])
    snapshots = []

    def evaluate():  # a made-up metric, and the weights it was measured on
        snapshots.append(weights(model))
        return {"accuracy": next(scores)}

    trainer = Trainer(step, config, tmp_path, evaluate=evaluate)
    progress = trainer.fit(data)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "split" not in r]
    assert set(train[0]) == {"step", "epoch", "lr", "tokens_per_s", "grad_norm", "loss", "task_loss", "lm_loss"}
    assert all(r["loss"] == pytest.approx(r["task_loss"] + 0.5 * r["lm_loss"], rel=1e-5) for r in train)
    assert [r["accuracy"] for r in records if r.get("split") == "validation"] == [0.5, 0.9, 0.6, 0.7, 0.8, 0.1]
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert progress.best_step == 8 and progress.step == 24
    assert not np.array_equal(weights(model)["backbone.h.0.attn.c_attn.weight"],
                              snapshots[1]["backbone.h.0.attn.c_attn.weight"])
    trainer.restore_best(progress)
    assert_same_weights(weights(model), snapshots[1])  # the second evaluation, step 8


def padded(batches, extra):
    """The same batches right-padded by extra[i] tokens: new lengths, the same examples and losses."""
    return [Batch(np.pad(b.ids, ((0, 0), (0, 0), (0, n))), b.positions,
                  np.pad(b.lm_mask, ((0, 0), (0, 0), (0, n))), b.labels) for b, n in zip(batches, extra)]


def test_dynamic_length_fine_tunes_like_a_graph_per_length_and_only_those_graphs_can_fill_the_memory(
        tmp_path, monkeypatch, capsys):
    resident, total = memory_in_use()  # the real numbers first
    assert 0.05 < resident < total
    calls = []

    def filling_up():  # each new length's graph adds 2.5 GB on a 10 GB machine
        calls.append(None)
        return 2.5 * len(calls), 10.0

    monkeypatch.setattr(trainer_module, "memory_in_use", filling_up)
    results = []
    for index, dynamic in enumerate((False, True)):
        calls.clear()
        model, _, config, data, validation = build(0, epochs=1, grad_accum=2, dynamic_length=dynamic)
        # Drawn in the order 2 4 | 3 6 | 5 0 | 1 7: every step meets a new length, pairs mix lengths.
        data = ListSource(padded([Batch(*b) for b in data.batches], [4, 6, 0, 0, 4, 2, 9, 0]), seed=0)
        validation = padded(validation, [3, 0])
        if dynamic:
            model.compile_for_any_length()
        trainer, test = fit_and_evaluate(model, data, validation, config, tmp_path / str(index), test=validation)
        results.append((weights(model), test, trainer.step, len(calls), capsys.readouterr().out))
    (static_weights, static_test, static, static_checks, static_out), \
        (dynamic_weights, dynamic_test, dynamic, dynamic_checks, dynamic_out) = results
    assert dynamic_test == static_test
    for name in static_weights:
        np.testing.assert_allclose(dynamic_weights[name], static_weights[name], atol=2e-6, err_msg=name)
    assert len(model.compile_cache) == 1  # validation and test batches of two lengths, one graph
    lengths = {b[0].shape for b in data.epoch(0)}  # micro-batches of five lengths, accumulated in pairs
    assert len(static.gradients.compile_cache) == len(lengths) == 5
    assert len(dynamic.gradients.compile_cache) == 1
    for step in (static, dynamic):  # the updates' graphs never depend on the batch shape
        assert step.optimizer.compile_cache_sizes() and set(step.optimizer.compile_cache_sizes()) == {1}
    # Checked after each step that met a new length until the warning (the third check), then never again.
    warnings = re.findall(r"warning: the process holds 7.5 of the machine's 10.0 GB after compiling the step "
                          r"for (\d) batch shapes", static_out)
    assert static_checks == 3 and len(warnings) == 1 and int(warnings[0]) < len(lengths)
    assert "set train.dynamic_length: true" in static_out
    assert dynamic_checks == 0 and "warning" not in dynamic_out  # one graph: nothing to watch
