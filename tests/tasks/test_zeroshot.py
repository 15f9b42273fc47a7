import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from gptft import GPT, GPTConfig, Tokenizer
from gptft.model.layers import named_parameters
from gptft.tasks import Task
from gptft.tasks.zeroshot import score_continuations, zero_shot_scores
from helpers import write_keyword_run


@pytest.fixture(autouse=True)
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)


def test_scores_are_the_log_probabilities_of_the_continuation():
    model = GPT(GPTConfig.preset("tiny", vocab_size=99, block_size=32), seed=2)
    pairs = [([5, 6, 7], [8, 9]), ([1], [2, 3, 4]), (list(range(40, 70)), [11, 12])]  # the last is cut to fit
    model.set_train(True)
    scores = score_continuations(model, pairs, batch_size=2)  # scored without dropout...
    assert model.training  # ...and the model is left in the mode it was in
    model.set_train(False)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    for (prefix, continuation), (total, count) in zip(pairs, scores):
        sequence = (prefix + continuation)[-33:]
        logits = model.lm_logits(model(Tensor(np.array([sequence[:-1]], np.int32)))).asnumpy()[0].astype(np.float64)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        n = len(continuation)
        expected = sum(log_probs[len(sequence) - 1 - n + i, token] for i, token in enumerate(continuation))
        assert count == n and total == pytest.approx(expected, abs=1e-4)


@pytest.fixture(scope="module")
def always_loved(tmp_path_factory):
    """The keyword run's tokenizer and a model that predicts " loved" after anything."""
    folder = tmp_path_factory.mktemp("zeroshot")
    write_keyword_run(folder)
    tokenizer = Tokenizer.from_pretrained(folder / "model")
    model = GPT.from_pretrained(folder / "model")
    (loved,) = tokenizer.encode(" loved")
    params = named_parameters(model, weights_only=True)
    last = f"h.{model.config.n_layer - 1}.ln_2"
    direction = np.zeros(model.config.n_embd, np.float32)
    direction[0] = 1.0
    params[f"{last}.weight"].set_data(Tensor(np.zeros(model.config.n_embd, np.float32)))
    params[f"{last}.bias"].set_data(Tensor(direction))  # every hidden state is `direction`
    table = params["wte.weight"].asnumpy().copy()
    table[loved] = 10 * direction
    params["wte.weight"].set_data(Tensor(table))
    return model, tokenizer


@pytest.mark.parametrize("verbalizers, expected", [({"negative": " dull", "positive": " loved"}, 1),
                                                   ({"negative": " loved", "positive": " dull"}, 0)])
def test_a_model_that_always_says_one_word_picks_its_label(always_loved, verbalizers, expected):
    model, tokenizer = always_loved
    task = Task("classification", labels=("negative", "positive"))
    fields = {"text": ["a dull film", "the plot was slow", "great music"]}
    scores = zero_shot_scores(model, tokenizer, task, fields, "{text} very", verbalizers)
    assert scores.shape == (3, 2) and (task.predict(scores) == expected).all()


def test_multiple_choice_picks_the_answer_the_model_finds_likely(always_loved):
    model, tokenizer = always_loved
    task = Task("multiple_choice")
    fields = {"context": ["the film", "a story"], "choices": [["dull dull", "loved loved"], ["loved", "slow", "bad"]]}
    scores = zero_shot_scores(model, tokenizer, task, fields, "", {})
    assert task.predict(scores).tolist() == [1, 0]
    assert np.isneginf(scores[0, 2])  # two answers, padded to the widest row
