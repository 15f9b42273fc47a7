import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import Parameter, Tensor, nn

from gptft import GPT, GPTConfig
from gptft.tasks.formats import TaskTokens
from gptft.tasks.heads import ClassificationHead
from gptft.model.layers import named_parameters
from gptft.tasks.losses import TaskLoss, cross_entropy
from gptft.training.optim import AdamW
from gptft.tasks.task_model import TaskModel
from gptft.tasks import Task
from gptft.training.step import TrainStep

TOKENS = TaskTokens(99, 100, 101)


class LinearLoss(nn.Cell):
    """loss = sum(w * x): its gradient is exactly x, so clipping can be checked against a reference."""

    loss_names = ("loss", "again", "and_again")

    def __init__(self, size):
        super().__init__()
        self.w = Parameter(Tensor(np.linspace(-1, 1, size).astype(np.float32)), name="w")

    def construct(self, x):
        loss = (self.w * x).sum()
        return loss, loss, loss


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_clipping_and_update_match_torch(rng, mode):
    ms.set_context(mode=mode)
    loss = LinearLoss(5)
    optimizer = AdamW(loss.trainable_params(), weight_decay=0.0)
    step = TrainStep(loss, optimizer, max_grad_norm=1.0)
    w = torch.tensor(np.linspace(-1, 1, 5).astype(np.float32), requires_grad=True)
    reference = torch.optim.AdamW([w], lr=0.1, weight_decay=0.0)
    for t, scale in enumerate((3.0, 0.2, 5.0, 0.5), start=1):
        x = (rng.normal(size=5) * scale).astype(np.float32)
        losses, norm = step.train_on([(x,)], t, 0.1)
        assert norm == pytest.approx(np.linalg.norm(x), rel=1e-5)
        assert list(losses) == ["loss", "again", "and_again"]
        w.grad = torch.tensor(x)
        torch.nn.utils.clip_grad_norm_([w], 1.0)
        reference.step()
    # torch divides by (norm + 1e-6) when clipping, hence the tolerance
    np.testing.assert_allclose(loss.w.asnumpy(), w.detach().numpy(), atol=5e-6)


def task_step(accumulate, seed=0):
    config = GPTConfig.preset("tiny", vocab_size=102, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    ms.set_seed(seed)
    model = TaskModel(GPT(config, seed=seed), ClassificationHead(32, 2, dropout=0.0))
    loss = TaskLoss(model, cross_entropy, 0.5)
    optimizer = AdamW(loss.trainable_params())
    return TrainStep(loss, optimizer, 1.0, accumulate=accumulate), model


def equal_length_batch(rng, n):
    task = Task("classification", labels=("a", "b"))
    seqs = [task.format({"text": list(rng.integers(0, 99, 6))}, TOKENS) for _ in range(n)]
    return task.pack(seqs, rng.integers(0, 2, n))


def test_gradient_accumulation_equals_one_large_batch(rng):
    ms.set_context(mode=ms.GRAPH_MODE)
    batches = [equal_length_batch(rng, 8) for _ in range(3)]
    whole, whole_model = task_step(1)
    split, split_model = task_step(2)
    whole.set_train(True)
    split.set_train(True)
    for t, batch in enumerate(batches, start=1):
        total, whole_norm = whole.train_on([tuple(batch)], step=t, lr=1e-3)
        halves = [tuple(a[i:i + 4] for a in batch) for i in (0, 4)]
        losses, grad_norm = split.train_on(halves, step=t, lr=1e-3)
        assert list(losses) == ["loss", "task_loss", "lm_loss"]
        for name in losses:  # each part is the mean of the halves', which is the whole batch's
            assert losses[name] == pytest.approx(total[name], rel=1e-5)
        assert grad_norm == pytest.approx(whole_norm, rel=1e-4)
    ours = named_parameters(split_model, weights_only=True)
    for name, param in named_parameters(whole_model, weights_only=True).items():
        np.testing.assert_allclose(ours[name].asnumpy(), param.asnumpy(), atol=2e-6, err_msg=name)
    with pytest.raises(ValueError, match="got 1 micro-batches, the step accumulates 2"):
        split.train_on(halves[:1], step=4, lr=1e-3)


def test_dynamic_loss_scaling_skips_overflowing_steps_and_shrinks_the_scale(rng):
    """The float16 path's loss scaling, exercised on CPU in float32 (the arithmetic is the same)."""
    loss = LinearLoss(4)
    optimizer = AdamW(loss.trainable_params(), weight_decay=0.0)
    scaler = ms.amp.DynamicLossScaler(scale_value=2.0**10, scale_factor=2, scale_window=1000)
    step = TrainStep(loss, optimizer, max_grad_norm=0.0, loss_scaler=scaler)
    before = loss.w.asnumpy().copy()
    losses, _ = step.train_on([(np.ones(4, np.float32),)], 1, 0.1)
    assert losses["loss"] == pytest.approx(float((before * 1).sum()), rel=1e-6)  # reported unscaled
    after_good = loss.w.asnumpy().copy()
    assert np.abs(after_good - before).max() > 0.05
    step.train_on([(np.array([np.inf, 1, 1, 1], np.float32),)], 2, 0.1)
    np.testing.assert_array_equal(loss.w.asnumpy(), after_good)  # the overflowing step changed nothing
    assert float(scaler.scale_value.asnumpy()) == 2.0**9


def test_the_gradient_norm_covers_every_segment_and_the_layers_share_one_norm_graph(rng):
    ms.set_context(mode=ms.GRAPH_MODE)
    step, _ = task_step(1)
    batch = equal_length_batch(rng, 4)
    _, grads, *_ = step.gradients(*step.inputs(batch, advance=False), *step.zeros)
    expected = np.sqrt(sum((g.asnumpy().astype(np.float64) ** 2).sum() for g in grads))
    _, norm = step.train_on([batch], 1, 1e-3)
    assert norm == pytest.approx(expected, rel=1e-5)
    assert len(step.optimizer.segments) == 3  # the rest, h.0 and h.1
    assert len(step.squared_sum.compile_cache) == 2  # the rest's shapes, and one for both layers


def test_checkpoint_state_holds_weights_dropout_counters_and_both_moments_of_every_trained_tensor():
    step, model = task_step(1)
    state = step.checkpoint_state()
    weights = step.weights()
    trained = [name for name, p in weights.items() if p.requires_grad]
    assert set(state) == set(weights) | {f"optimizer.{m}.{name}" for name in trained for m in "mv"}
    assert "model.backbone.h.0.attn.attn_dropout.calls" in weights  # the dropout state resumes too
    assert state["model.head.linear.weight"] is model.head.linear.weight


def test_a_lora_step_trains_adapters_new_rows_and_head_only_and_checkpoints_just_those(rng):
    from gptft.commands.finetune import task_train_step
    from gptft.model.config import LoRAConfig
    from gptft.model.lora import add_adapters
    from gptft.training.config import TrainConfig

    ms.set_context(mode=ms.GRAPH_MODE)
    task = Task("classification", labels=("a", "b"))
    model = TaskModel(GPT(GPTConfig.preset("tiny"), seed=0), ClassificationHead(32, 2, dropout=0.1), task)
    model.backbone.resize_token_embeddings(102)
    add_adapters(model.backbone, LoRAConfig(rank=2, dropout=0.1), first_new_row=99)
    step = task_train_step(model, TrainConfig(lr=1e-2))
    before = {n: p.asnumpy().copy() for n, p in named_parameters(model, weights_only=True).items()}
    step.set_train(True)
    for t in range(1, 4):
        batch = equal_length_batch(rng, 4)
        batch[0][:, :, 2] = 100  # a task token in every sequence: the new rows get gradients
        step.train_on([tuple(batch)], step=t, lr=1e-2)
    after = {n: p.asnumpy() for n, p in named_parameters(model, weights_only=True).items()}
    trained = {n for n, p in named_parameters(model).items() if p.requires_grad}
    assert trained == {"backbone.wte.added", "head.linear.weight", "head.linear.bias"} | {
        f"backbone.h.{i}.attn.{layer}.lora_{ab}" for i in range(2) for layer in ("c_attn", "c_proj") for ab in "ab"}
    for name in before:
        if name in trained:
            assert not np.array_equal(after[name], before[name]), f"{name} did not train"
        else:
            np.testing.assert_array_equal(after[name], before[name], err_msg=f"frozen {name} changed")
    state = step.checkpoint_state()
    weights = {n.removeprefix("model.") for n in step.weights() if not n.endswith((".calls", ".key"))}
    assert weights == trained
    assert set(state) == set(step.weights()) | {f"optimizer.{m}.model.{n}" for n in trained for m in "mv"}
