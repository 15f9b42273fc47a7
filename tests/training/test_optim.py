import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import Parameter, Tensor

from gptft.training.optim import AdamW, adam_scalars, decays, linear_warmup_cosine, linear_warmup_linear_decay, segments


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_adamw_matches_torch_adamw(rng, mode):
    ms.set_context(mode=mode)
    shapes = [(6, 4), (4,), (3, 5)]
    initial = [rng.normal(size=s).astype(np.float32) for s in shapes]
    params = [Parameter(Tensor(x), name=f"p{i}") for i, x in enumerate(initial)]
    optimizer = AdamW(params, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1, group_size=2)  # two update graphs
    theirs = [torch.tensor(x, requires_grad=True) for x in initial]
    reference = torch.optim.AdamW([{"params": [theirs[0], theirs[2]], "weight_decay": 0.1},
                                   {"params": [theirs[1]], "weight_decay": 0.0}], betas=(0.9, 0.98), eps=1e-6)
    for t in range(1, 8):
        lr = 1e-2 * t / 7
        grads = [rng.normal(size=s).astype(np.float32) for s in shapes]
        optimizer.apply([Tensor(g) for g in grads], optimizer.scalars(t, lr))
        for group in reference.param_groups:
            group["lr"] = lr
        for tensor, g in zip(theirs, grads):
            tensor.grad = torch.tensor(g)
        reference.step()
    for ours, expected, start in zip(params, theirs, initial):
        np.testing.assert_allclose(ours.asnumpy(), expected.detach().numpy(), atol=2e-6)
        assert np.abs(ours.asnumpy() - start).max() > 1e-3


def named(*names):
    return [Parameter(Tensor(np.zeros(2, np.float32)), name=name) for name in names]


def test_segments_are_numbered_layers_after_the_rest():
    params = named("m.wte.weight", "m.wpe.weight", "m.h.0.ln_1.weight", "m.h.0.c_fc.bias", "m.h.1.ln_1.weight",
                   "m.h.1.c_fc.bias", "m.h.10.ln_1.weight", "m.ln_f.weight", "m.head.weight", "m.head.bias")
    assert segments(params) == [[0, 1, 7, 8, 9], [2, 3], [4, 5], [6]]  # `ln_1` and `ln_f` are not numbers
    assert segments(params, most=2) == [[0, 1], [7, 8], [9], [2, 3], [4, 5], [6]]
    assert segments(named("0.weight", "0.bias", "1.weight")) == [[0, 1], [2]]
    assert segments([]) == []


def test_layers_of_the_same_shapes_share_their_update_graph(rng):
    from gptft import GPT, GPTConfig
    from gptft.tasks.heads import ClassificationHead
    from gptft.tasks.losses import TaskLoss, cross_entropy
    from gptft.tasks.task_model import TaskModel
    from gptft.training.step import TrainStep

    ms.set_context(mode=ms.GRAPH_MODE)
    config = GPTConfig.preset("tiny", n_layer=3)
    loss = TaskLoss(TaskModel(GPT(config), ClassificationHead(config.n_embd, 2)), cross_entropy, 0.5)
    step = TrainStep(loss, AdamW(loss.trainable_params()), max_grad_norm=1.0)
    assert len(step.optimizer.segments) == 4  # the embeddings and the head, then three blocks
    before = {p.name: p.asnumpy().copy() for p in step.optimizer.params}
    step.set_train(True)
    for t in (1, 2):
        batch = (rng.integers(0, config.vocab_size, (4, 1, 8)).astype(np.int32), np.full((4, 1), 7, np.int32),
                 np.ones((4, 1, 8), np.float32), rng.integers(0, 2, 4).astype(np.int32))
        step.train_on([batch], t, 1e-3)
    assert step.optimizer.compile_cache_sizes() == [1, 1]  # one graph for the rest, one for the blocks
    assert all(np.abs(p.asnumpy() - before[p.name]).max() > 0 for p in step.optimizer.params)  # every one updated


def test_decay_applies_to_matrices_not_to_biases_or_gains():
    assert decays(Parameter(Tensor(np.zeros((3, 2), np.float32)), name="w"))
    assert not decays(Parameter(Tensor(np.zeros(3, np.float32)), name="b"))


def test_adam_scalars_put_the_kernels_epsilon_where_adamw_has_it():
    beta1_power, beta2_power, lr, eps_t, decay = adam_scalars(3, 0.1, (0.9, 0.999), 1e-8, 0.01)
    assert (beta1_power, beta2_power, lr) == pytest.approx((0.9**3, 0.999**3, 0.1))
    # The kernel divides by sqrt(v) + eps_t and scales by sqrt(1 - β2^t): eps lands beside sqrt(v̂).
    assert eps_t / np.sqrt(1 - 0.999**3) == pytest.approx(1e-8)
    assert decay == pytest.approx(0.1 * 0.01)  # decoupled decay: lr · wd, no bias correction
    assert adam_scalars(5, 0.0)[4] == 0.0


def test_schedules():
    assert [linear_warmup_linear_decay(s, 10, 2) for s in (1, 2, 6, 10)] == [0.5, 1.0, 0.5, 0.0]
    assert linear_warmup_linear_decay(3, 10, 0) == pytest.approx(7 / 10)
    assert [linear_warmup_cosine(s, 12, 2) for s in (1, 2, 7, 12)] == pytest.approx([0.5, 1.0, 0.5, 0.0])
