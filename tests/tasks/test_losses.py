import numpy as np
import pytest
from mindspore import Tensor

from gptft import GPT, GPTConfig
from gptft.errors import ConfigError
from gptft.tasks.formats import TaskTokens, pack
from gptft.tasks.heads import ClassificationHead
from gptft.tasks.losses import TaskLoss, cross_entropy, masked_lm_loss, mean_squared_error
from gptft.tasks.task_model import TaskModel
from gptft.tasks import Task

TOKENS = TaskTokens(99, 100, 101)


def reference_lm_loss(logits: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> float:
    """Mean over real targets of -log softmax(logits[t])[ids[t+1]], in float64."""
    logits = logits.astype(np.float64)[:, :-1]
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    targets = ids[:, 1:]
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    weights = mask[:, 1:]
    return float(-(picked * weights).sum() / weights.sum())


def test_masked_lm_loss_counts_real_tokens_only(rng):
    model = GPT(GPTConfig.preset("tiny", vocab_size=102))
    batch = pack([[list(rng.integers(0, 99, n))] for n in (3, 9, 6)], [0, 0, 0], pad_id=7, length=12)
    ids, mask = batch.ids[:, 0], batch.lm_mask[:, 0]
    hidden = model(Tensor(ids))
    ours = float(masked_lm_loss(model, hidden, Tensor(ids), Tensor(mask)))
    expected = reference_lm_loss(model.lm_logits(hidden).asnumpy(), ids, mask)
    assert abs(ours - expected) < 1e-5 * expected
    longer = pack([[list(ids[i, :int(mask[i].sum())])] for i in range(3)], [0, 0, 0], pad_id=3, length=20)
    hidden = model(Tensor(longer.ids[:, 0]))
    again = float(masked_lm_loss(model, hidden, Tensor(longer.ids[:, 0]), Tensor(longer.lm_mask[:, 0])))
    assert abs(again - ours) < 1e-5 * ours


def make(lm_coef, rng):
    backbone = GPT(GPTConfig.preset("tiny", vocab_size=102), seed=1)
    model = TaskModel(backbone, ClassificationHead(32, 2, dropout=0.0))
    task = Task("classification", labels=("a", "b"))
    batch = pack([task.format({"text": list(rng.integers(0, 99, n))}, TOKENS) for n in (4, 7)], [0, 1], length=10)
    return TaskLoss(model, cross_entropy, lm_coef), model, batch


def test_zero_lambda_is_exactly_the_task_loss_and_never_computes_the_lm_head(rng):
    loss, model, batch = make(0.0, rng)

    def forbidden(hidden):
        raise AssertionError("the LM head must not run when lm_coef is 0")

    model.backbone.lm_logits = forbidden
    total, task_loss, lm = loss(*map(Tensor, batch))
    assert float(total) == float(task_loss) and float(lm) == 0.0
    logits = model(Tensor(batch.ids), Tensor(batch.positions)).asnumpy()
    shifted = logits - logits.max(-1, keepdims=True)
    expected = -np.mean((shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))[[0, 1], batch.labels])
    assert abs(float(task_loss) - expected) < 1e-6


def test_total_is_task_plus_lambda_times_lm(rng):
    loss, model, batch = make(0.5, rng)
    total, task_loss, lm = (float(x) for x in loss(*map(Tensor, batch)))
    assert lm > 3.0  # about ln(102) for an untrained model
    assert abs(total - (task_loss + 0.5 * lm)) < 1e-6


def test_negative_lambda_is_refused(rng):
    with pytest.raises(ConfigError, match="lm_coef"):
        TaskLoss(None, cross_entropy, -0.1)


def test_mean_squared_error():
    scores = Tensor(np.array([[1.0], [2.0], [4.0]], np.float32))
    labels = Tensor(np.array([1.0, 3.0, 2.0], np.float32))
    assert abs(float(mean_squared_error(scores, labels)) - (0 + 1 + 4) / 3) < 1e-6
