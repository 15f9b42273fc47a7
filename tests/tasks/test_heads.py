import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from gptft import GPT, GPTConfig
from gptft.errors import ConfigError
from gptft.tasks.formats import TaskTokens, pack
from gptft.tasks.heads import (HEADS, ClassificationHead, MultipleChoiceHead, RegressionHead, SimilarityHead,
                         gather_extract, head_factory, register_head)
from gptft.tasks.losses import TaskLoss, cross_entropy, mean_squared_error
from gptft.tasks.task_model import TaskModel
from gptft.tasks import Task

TOKENS = TaskTokens(99, 100, 101)


def tiny_task_model(head, seed=0):
    backbone = GPT(GPTConfig.preset("tiny", vocab_size=102), seed=seed)
    return TaskModel(backbone, head)


def logits_of(model, batch):
    model.set_train(False)
    return model(Tensor(batch.ids), Tensor(batch.positions)).asnumpy()


def test_gather_extract_reads_the_extract_positions(rng):
    hidden = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    positions = np.array([[4, 0, 2], [1, -1, 3]], np.int32)
    out = gather_extract(Tensor(hidden), Tensor(positions)).asnumpy()
    for b in range(2):
        for s in range(3):
            np.testing.assert_array_equal(out[b, s], hidden[b, s, max(positions[b, s], 0)])


def test_similarity_is_symmetric_in_eval(rng):
    model = tiny_task_model(SimilarityHead(32, 3))
    task = Task("similarity", labels=("a", "b", "c"))
    a, b = list(rng.integers(0, 99, 5)), list(rng.integers(0, 99, 9))
    forward = pack([task.format({"text_a": a, "text_b": b}, TOKENS)], [0])
    backward = pack([task.format({"text_a": b, "text_b": a}, TOKENS)], [0])
    np.testing.assert_allclose(logits_of(model, forward), logits_of(model, backward), rtol=1e-5, atol=1e-6)


def test_multiple_choice_permuting_answers_permutes_scores(rng):
    model = tiny_task_model(MultipleChoiceHead(32))
    context = list(rng.integers(0, 99, 6))
    answers = [list(rng.integers(0, 99, n)) for n in (2, 5, 3, 4)]
    task = Task("multiple_choice")
    scores = logits_of(model, pack([task.format({"context": context, "choices": answers}, TOKENS)], [0]))[0]
    order = [2, 0, 3, 1]
    permuted = [answers[i] for i in order]
    permuted_scores = logits_of(model, pack([task.format({"context": context, "choices": permuted}, TOKENS)], [0]))[0]
    np.testing.assert_allclose(permuted_scores, scores[order], rtol=1e-5, atol=1e-6)
    assert np.ptp(scores) > 0  # the scores are not all equal, so the check has teeth


@pytest.mark.parametrize("kind, head, example", [
    ("classification", ClassificationHead(32, 2), {"text": [5, 6, 7]}),
    ("entailment", ClassificationHead(32, 3), {"premise": [5, 6], "hypothesis": [7]}),
    ("similarity", SimilarityHead(32, 1), {"text_a": [5, 6], "text_b": [7, 8, 9]}),
    ("multiple_choice", MultipleChoiceHead(32), {"context": [5, 6], "choices": [[7], [8, 9]]}),
])
def test_padding_changes_no_logit(kind, head, example):
    model = tiny_task_model(head)
    task = Task(kind)
    seqs = task.format(example, TOKENS)
    tight = logits_of(model, pack([seqs], [0]))
    for pad_id, length, extra_choices in ((0, 20, 0), (98, 32, 0), (7, 16, 3)):
        padded = pack([seqs], [0], pad_id=pad_id, length=length,
                      num_sequences=len(seqs) + extra_choices if kind == "multiple_choice" else None)
        out = logits_of(model, padded)
        np.testing.assert_allclose(out[:, :tight.shape[1]], tight, rtol=1e-5, atol=2e-6)
        if kind == "multiple_choice" and extra_choices:
            assert (out[:, tight.shape[1]:] <= -1e8).all()  # padded choices can never win


def test_padded_choices_never_win_even_with_the_best_raw_score():
    head = MultipleChoiceHead(32)
    head.set_train(False)
    hidden = np.zeros((1, 3, 4, 32), np.float32)
    hidden[0, 2] = 100.0  # the padded choice would score highest if read
    head.linear.weight.set_data(Tensor(np.ones((1, 32), np.float32)))
    scores = head(Tensor(hidden), Tensor(np.array([[3, 3, -1]], np.int32))).asnumpy()
    assert scores.argmax() != 2


@pytest.mark.parametrize("kind, head, example, label", [
    ("classification", ClassificationHead(32, 2), {"text": [5, 6, 7]}, 1),
    ("classification", RegressionHead(32), {"text": [5, 6, 7]}, 0.7),
    ("similarity", SimilarityHead(32, 2), {"text_a": [5], "text_b": [7, 8]}, 1),
    ("multiple_choice", MultipleChoiceHead(32), {"context": [5, 6], "choices": [[7], [8, 9]]}, 1),
])
def test_gradients_reach_the_backbone_from_every_head(kind, head, example, label):
    model = tiny_task_model(head)
    regression = isinstance(label, float)
    batch = pack([Task(kind).format(example, TOKENS)], [label], label_dtype=np.float32 if regression else np.int32)
    loss = TaskLoss(model, mean_squared_error if regression else cross_entropy, lm_coef=0.0)
    params = loss.trainable_params()
    _, grads = ms.value_and_grad(loss, None, params, has_aux=True)(*map(Tensor, batch))
    named = {id(p): i for i, p in enumerate(params)}
    for param in (model.backbone.wte.weight, model.backbone.h[0].attn.c_attn.weight, model.backbone.h[1].mlp.c_fc.weight):
        assert np.abs(grads[named[id(param)]].asnumpy()).max() > 0


def test_head_registry():
    assert set(HEADS) >= {"classification", "regression", "similarity", "multiple_choice"}
    with pytest.raises(ConfigError, match="unknown head 'nope'"):
        head_factory("nope")

    class Custom(nn.Cell):
        def __init__(self, n_embd, num_outputs, dropout):
            super().__init__()
            self.n = num_outputs

        def construct(self, hidden, positions):
            return hidden[:, 0, 0, : self.n]

    register_head("test_custom", Custom)
    try:
        assert isinstance(head_factory("test_custom")(32, 2, 0.1), Custom)
        with pytest.raises(ConfigError, match="already registered"):
            register_head("test_custom", ClassificationHead)
    finally:
        del HEADS["test_custom"]


def test_regression_and_multiple_choice_heads_check_their_outputs():
    with pytest.raises(ConfigError, match="one output"):
        RegressionHead(32, 3)
    with pytest.raises(ConfigError, match="one output"):
        MultipleChoiceHead(32, 2)
