import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from gptft import GPT, GPTConfig
from gptft.model.layers import seed_dropout
from helpers import random_ids

LAYOUTS = ["post_ln", "pre_ln"]


def lm_loss(model, ids):
    logits = model.lm_logits(model(ids[:, :-1]))
    return ops.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shapes_and_tied_head(tiny_config, rng, layout):
    model = GPT(GPTConfig.preset("tiny", layout=layout))
    ids = random_ids(rng, (3, 7))
    hidden = model(ids)
    assert hidden.shape == (3, 7, 32)
    logits = model.lm_logits(hidden)
    assert logits.shape == (3, 7, 99)
    expected = hidden.asnumpy() @ model.wte.weight.asnumpy().T
    np.testing.assert_allclose(logits.asnumpy(), expected, rtol=1e-5, atol=1e-5)
    assert (model.ln_f is not None) == (layout == "pre_ln")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_right_padding_changes_no_real_token(rng, layout):
    model = GPT(GPTConfig.preset("tiny", layout=layout))
    ids = rng.integers(0, 99, size=(2, 6)).astype(np.int32)
    reference = model(Tensor(ids)).asnumpy()
    for pad_id, extra in ((0, 1), (98, 10), (5, 26)):
        padded = np.concatenate([ids, np.full((2, extra), pad_id, np.int32)], axis=1)
        hidden = model(Tensor(padded)).asnumpy()
        np.testing.assert_allclose(hidden[:, :6], reference, atol=2e-6)


def test_attention_is_causal(rng, tiny_config):
    model = GPT(tiny_config)
    ids = rng.integers(0, 99, size=(1, 8)).astype(np.int32)
    changed = ids.copy()
    changed[0, 5] = (changed[0, 5] + 1) % 99
    a, b = model(Tensor(ids)).asnumpy(), model(Tensor(changed)).asnumpy()
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-3


def test_seed_decides_initialisation(tiny_config):
    a, b, c = GPT(tiny_config, seed=1), GPT(tiny_config, seed=1), GPT(tiny_config, seed=2)
    wa, wb, wc = (m.h[0].attn.c_attn.weight.asnumpy() for m in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)
    assert abs(wa.std() - 0.02) < 0.003
    np.testing.assert_array_equal(a.h[0].attn.c_attn.bias.asnumpy(), 0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_graph_mode_forward_and_backward_match_pynative(rng, layout):
    config = GPTConfig.preset("tiny", layout=layout, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    ids = random_ids(rng, (2, 9))

    def run():
        model = GPT(config, seed=3)
        grad_fn = ms.value_and_grad(lambda x: lm_loss(model, x), None, model.trainable_params())
        loss, grads = grad_fn(ids)
        return model(ids).asnumpy(), loss.asnumpy(), [g.asnumpy() for g in grads]

    eager = run()
    ms.set_context(mode=ms.GRAPH_MODE)

    class Forward(nn.Cell):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def construct(self, x):
            return self.model(x)

    model = GPT(config, seed=3)
    compiled_hidden = Forward(model)(ids).asnumpy()

    def loss_fn(x):
        return lm_loss(model, x)

    grad_fn = ms.jit(ms.value_and_grad(loss_fn, None, model.trainable_params()))
    loss, grads = grad_fn(ids)
    np.testing.assert_allclose(compiled_hidden, eager[0], atol=1e-5)
    np.testing.assert_allclose(loss.asnumpy(), eager[1], rtol=1e-5)
    assert len(grads) == len(eager[2]) == len(model.trainable_params())
    for compiled, reference in zip(grads, eager[2]):
        np.testing.assert_allclose(compiled.asnumpy(), reference, rtol=1e-4, atol=1e-6)
    assert all(np.abs(g).max() > 0 for g in eager[2])  # every parameter, embeddings included, learns


@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_computes_the_attention_of_evaluation(rng, layout):
    """Training takes the attention probabilities as exp(log_softmax), evaluation as softmax (the
    gradient graph keeps less of the first): with dropout off, the same values and gradients."""
    config = GPTConfig.preset("tiny", layout=layout, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    model = GPT(config, seed=5)
    ids = random_ids(rng, (3, 11))
    grad_fn = ms.value_and_grad(lambda x: lm_loss(model, x), None, model.trainable_params())
    results = {}
    for training in (False, True):
        model.set_train(training)
        loss, grads = grad_fn(ids)
        results[training] = model(ids).asnumpy(), float(loss.asnumpy()), [g.asnumpy() for g in grads]
    (hidden_eval, loss_eval, grads_eval), (hidden_train, loss_train, grads_train) = results[False], results[True]
    np.testing.assert_allclose(hidden_train, hidden_eval, atol=1e-5)
    assert loss_train == pytest.approx(loss_eval, rel=1e-6)
    for trained, evaluated in zip(grads_train, grads_eval):
        np.testing.assert_allclose(trained, evaluated, rtol=1e-4, atol=1e-6)


def test_dropout_is_active_only_in_training(rng):
    model = GPT(GPTConfig.preset("tiny"))
    ids = random_ids(rng, (2, 5))
    evaluated = model(ids).asnumpy()
    model.set_train(True)
    trained_a, trained_b = model(ids).asnumpy(), model(ids).asnumpy()
    model.set_train(False)
    np.testing.assert_array_equal(model(ids).asnumpy(), evaluated)
    assert np.abs(trained_a - evaluated).max() > 1e-3
    assert np.abs(trained_a - trained_b).max() > 1e-3


def test_resize_token_embeddings_keeps_old_rows_and_tie(rng, tiny_config):
    model = GPT(tiny_config)
    old = model.wte.weight.asnumpy()
    model.resize_token_embeddings(102, seed=5)
    table = model.wte.weight.asnumpy()
    assert table.shape == (102, 32) and model.config.vocab_size == 102
    np.testing.assert_array_equal(table[:99], old)
    assert 0.01 < table[99:].std() < 0.03
    hidden = model(random_ids(rng, (1, 4), vocab=102))
    np.testing.assert_allclose(model.lm_logits(hidden).asnumpy(), hidden.asnumpy() @ table.T, rtol=1e-5, atol=1e-5)
    assert model.wte.weight.name == "wte.weight"
    with pytest.raises(ValueError, match="shrink"):
        model.resize_token_embeddings(50)


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_host_drawn_dropout_masks_equal_the_ones_the_graph_hashes(rng, mode):
    ms.set_context(mode=mode)
    ids = Tensor(rng.integers(0, 99, (3, 9)).astype(np.int32))
    in_graph, on_host = (GPT(GPTConfig.preset("tiny", attn_pdrop=0.2, resid_pdrop=0.3), seed=4) for _ in range(2))
    for model in (in_graph, on_host):
        seed_dropout(model, 7)  # the same keys in both
        model.set_train(True)
    for call in range(2):  # the second call draws fresh masks, the same way in both
        expected = in_graph(ids).asnumpy()
        keep = on_host.draw_keep_masks(3, 9)
        assert [m.shape for m in keep[:4]] == [(27, 32), (3, 4, 9, 9), (27, 32), (27, 32)]  # the blocks' rows
        np.testing.assert_array_equal(on_host(ids, tuple(Tensor(m) for m in keep)).asnumpy(), expected)
    assert int(on_host.h[1].mlp.dropout.calls.asnumpy()[0]) == int(in_graph.h[1].mlp.dropout.calls.asnumpy()[0]) == 2
    untouched = on_host.draw_keep_masks(3, 9, advance=False)
    assert int(on_host.drop.calls.asnumpy()[0]) == 2 and untouched[0].shape == (27, 32)


@pytest.mark.parametrize("layout", ["post_ln", "pre_ln"])
def test_reinitialize_blocks_keeps_the_embeddings_and_first_blocks(layout):
    from gptft.model.layers import named_parameters

    config = GPTConfig.preset("tiny", vocab_size=99, n_layer=3, layout=layout)
    model = GPT(config, seed=1)
    before = {n: p.asnumpy().copy() for n, p in named_parameters(model, weights_only=True).items()}
    fresh = {n: p.asnumpy() for n, p in named_parameters(GPT(config, seed=7), weights_only=True).items()}
    model.reinitialize_blocks(1, seed=7)
    after = {n: p.asnumpy() for n, p in named_parameters(model, weights_only=True).items()}
    for name in after:
        transferred = name.startswith(("wte.", "wpe.", "h.0."))
        np.testing.assert_array_equal(after[name], before[name] if transferred else fresh[name], err_msg=name)
    assert not np.array_equal(after["h.1.attn.c_attn.weight"], before["h.1.attn.c_attn.weight"])
    with pytest.raises(ValueError, match="0..3"):
        model.reinitialize_blocks(4)
