import mindspore as ms
import numpy as np
import pytest

from gptft import GPT, GPTConfig
from gptft.errors import DataError
from gptft.model.generation import next_tokens
from helpers import hf_reference_model

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [1, 2], [40, 41, 42, 43]]


@pytest.fixture(autouse=True)
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)


def recomputed_greedy(model, prompt, steps):
    """Greedy continuation computed the slow way, op by op: the whole sequence through the model at every step."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    sequence = list(prompt)
    for _ in range(steps):
        hidden = model(ms.Tensor(np.array([sequence], np.int32)))
        sequence.append(int(model.lm_logits(hidden).asnumpy()[0, -1].argmax()))
    ms.set_context(mode=ms.GRAPH_MODE)
    return sequence[len(prompt):]


@pytest.mark.parametrize("layout", ["post_ln", "pre_ln"])
def test_cached_greedy_on_a_batch_equals_recomputing_each_prompt_alone(layout):
    model = GPT(GPTConfig.preset("tiny", vocab_size=99, layout=layout), seed=3)
    batched = model.generate(PROMPTS, max_new_tokens=10, temperature=0)
    assert batched == [recomputed_greedy(model, p, 10) for p in PROMPTS]


@pytest.mark.parametrize("family", ["openai-gpt", "gpt2"])
def test_greedy_generation_equals_transformers(tmp_path, family):
    import torch

    reference = hf_reference_model(family, seed=4)
    reference.save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path)
    ours = model.generate(PROMPTS, max_new_tokens=12, temperature=0)
    for prompt, new in zip(PROMPTS, ours):
        ids = torch.tensor([prompt])
        expected = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                                      pad_token_id=0)[0, len(prompt):].tolist()
        assert new == expected


def test_sampling_follows_the_seed_and_stops_at_a_stop_token():
    # Several calls on one model: its compiled graphs are reused, with the key/value caches as inputs.
    model = GPT(GPTConfig.preset("tiny", vocab_size=99), seed=5)
    first = model.generate(PROMPTS, max_new_tokens=12, temperature=1.5, seed=7)
    assert first != model.generate(PROMPTS, max_new_tokens=12, temperature=1.5, seed=8)
    assert model.generate(PROMPTS, max_new_tokens=12, top_k=1, seed=9) == \
        model.generate(PROMPTS, max_new_tokens=12, temperature=0)  # one candidate: greedy
    row = first[0]
    stop = row[3]
    cut = model.generate(PROMPTS, max_new_tokens=12, temperature=1.5, seed=7, stop=[stop])
    assert cut[0] == row[:row.index(stop)]  # the same seed, the same draws, until the stop token (not returned)


def test_next_tokens_keeps_top_k_and_the_smallest_set_reaching_top_p():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 2000))
    rng = np.random.default_rng(0)
    assert set(next_tokens(logits, rng, top_k=2)) == {0, 1}
    assert set(next_tokens(logits, rng, top_p=0.8)) == {0, 1}  # 0.5 + 0.3 reaches 0.8
    assert set(next_tokens(logits, rng, top_p=0.81)) == {0, 1, 2}
    drawn = next_tokens(logits, rng)
    assert abs((drawn == 0).mean() - 0.5) < 0.05 and abs((drawn == 3).mean() - 0.05) < 0.02
    assert next_tokens(logits[:1], rng, temperature=0).tolist() == [0]


@pytest.mark.parametrize("prompts, settings, message", [
    ([[1] * 30], {"max_new_tokens": 5}, "a prompt of 30 tokens plus 5 new tokens is longer than the model's 32"),
    ([[1, 200]], {}, "token id 200 is outside the model's vocabulary"),
    ([[]], {}, "every prompt at least one token"),
    ([[1]], {"top_p": 0}, "top_p in"),
])
def test_bad_requests_name_the_problem(prompts, settings, message):
    model = GPT(GPTConfig.preset("tiny", vocab_size=99), seed=0)
    with pytest.raises(DataError, match=message):
        model.generate(prompts, **settings)
