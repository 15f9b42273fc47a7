import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import Parameter, Tensor

from gptft.training.optim import AdamW, adam_scalars, decays, linear_warmup_cosine, linear_warmup_linear_decay


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


def test_decay_applies_to_matrices_not_to_biases_or_gains():
    assert decays(Parameter(Tensor(np.zeros((3, 2), np.float32)), name="w"))
    assert not decays(Parameter(Tensor(np.zeros(3, np.float32)), name="b"))


def test_adam_scalars_fold_bias_correction():
    lr_t, eps_t, decay_t = adam_scalars(1, 0.1, (0.9, 0.999), 1e-8, 0.01)
    assert lr_t == pytest.approx(0.1 * np.sqrt(0.001) / 0.1)
    assert eps_t == pytest.approx(1e-8 * np.sqrt(0.001))
    assert lr_t * decay_t == pytest.approx(0.1 * 0.01)  # decoupled decay uses the undecorated lr
    assert adam_scalars(5, 0.0)[2] == 0.0


def test_schedules():
    assert [linear_warmup_linear_decay(s, 10, 2) for s in (1, 2, 6, 10)] == [0.5, 1.0, 0.5, 0.0]
    assert linear_warmup_linear_decay(3, 10, 0) == pytest.approx(7 / 10)
    assert [linear_warmup_cosine(s, 12, 2) for s in (1, 2, 7, 12)] == pytest.approx([0.5, 1.0, 0.5, 0.0])
