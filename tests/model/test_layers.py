import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from gptft.model.layers import Dropout, LayerNorm, Linear, gelu_exact, gelu_tanh, keep_mask, seed_dropout


def reference_mask(cell: Dropout, call: int, size: int) -> np.ndarray:
    """The mask `Dropout` must draw on its `call`-th training call, from the NumPy specification."""
    return keep_mask(int(cell.key.asnumpy().view(np.uint32)[0]), call, size, cell.p)


def test_dropout_masks_follow_the_hash_and_advance_per_call():
    cell = Dropout(0.3)
    # A fixed key: a new cell's key counts the cells built before it in this process, so it would
    # depend on which tests ran first in this worker.
    seed_dropout(cell, 0)
    cell.set_train(True)
    x = Tensor(np.ones((4, 1000), np.float32))  # 12,000 draws: a kept share off by 0.02 is 4.8 sigma
    masks = []
    for call in range(3):
        y = cell(x).asnumpy()
        assert int(cell.calls.asnumpy()) == call + 1
        kept = y != 0
        np.testing.assert_array_equal(kept.ravel(), reference_mask(cell, call, x.size))
        np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
        masks.append(kept)
    assert not np.array_equal(masks[0], masks[1])
    assert abs(np.mean(masks) - 0.7) < 0.02


def test_dropout_restored_counter_repeats_the_same_masks():
    cell = Dropout(0.5)
    cell.set_train(True)
    x = Tensor(np.ones((64,), np.float32))
    cell(x)
    second = cell(x).asnumpy()
    cell.calls.set_data(Tensor(np.array([1], np.int32)))  # as a resumed checkpoint would
    np.testing.assert_array_equal(cell(x).asnumpy(), second)


def test_dropout_is_identity_in_eval_and_counts_nothing():
    cell = Dropout(0.5)
    cell.set_train(False)
    x = Tensor(np.arange(10, dtype=np.float32))
    np.testing.assert_array_equal(cell(x).asnumpy(), x.asnumpy())
    assert int(cell.calls.asnumpy()) == 0


def test_seed_dropout_makes_masks_depend_on_seed_and_path_only():
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.a, self.b = Dropout(0.5), Dropout(0.5)

        def construct(self, x):
            return self.a(x), self.b(x)

    x = Tensor(np.ones((256,), np.float32))

    def masks(seed):
        net = Net()
        net.set_train(True)
        seed_dropout(net, seed)
        return [m.asnumpy() for m in net(x)]

    first, again, other = masks(1), masks(1), masks(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)  # built later in the same process, same masks
    assert not np.array_equal(first[0], first[1])  # two sites differ
    assert not np.array_equal(first[0], other[0])  # another seed differs


def test_dropout_cells_draw_different_masks():
    a, b = Dropout(0.5), Dropout(0.5)
    a.set_train(True)
    b.set_train(True)
    x = Tensor(np.ones((256,), np.float32))
    assert not np.array_equal(a(x).asnumpy(), b(x).asnumpy())


def test_dropout_mask_is_the_same_compiled():
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.drop = Dropout(0.4)

        def construct(self, x):
            return self.drop(x)

    ms.set_context(mode=ms.GRAPH_MODE)
    net = Net()
    net.set_train(True)
    y = net(Tensor(np.ones((3, 50), np.float32))).asnumpy()
    np.testing.assert_array_equal(y.ravel() != 0, reference_mask(net.drop, 0, 150))


def test_dropout_applies_a_host_mask_the_same_by_select_as_by_product():
    """`select=True` (the attention probabilities' dropout) must give the values and gradients of the
    product bit for bit, with the dropped elements zero."""

    class Net(nn.Cell):
        def __init__(self, select):
            super().__init__()
            self.drop = Dropout(0.3, select=select)

        def construct(self, x, keep, cotangent):
            return (self.drop(x, keep) * cotangent).sum()

    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(0)
    x, cotangent = (Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32)) for _ in range(2))
    results = []
    for select in (False, True):
        net = Net(select)
        seed_dropout(net.drop, 0)
        net.set_train(True)
        keep = net.drop.draw(x.shape)
        value, grad = ms.value_and_grad(net, grad_position=0)(x, Tensor(keep), cotangent)
        results.append((keep, value.asnumpy(), grad.asnumpy()))
    (keep, value, grad), (keep_select, value_select, grad_select) = results
    np.testing.assert_array_equal(keep, keep_select)
    assert 0 < keep.mean() < 1
    np.testing.assert_array_equal(value_select, value)
    np.testing.assert_array_equal(grad_select, grad)
    np.testing.assert_array_equal(grad[~keep], 0)
    np.testing.assert_allclose(grad[keep], cotangent.asnumpy()[keep] / 0.7, rtol=1e-6)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_dropout_rejects_bad_probability(p):
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)


def test_gelu_forms_match_their_formulas():
    x = np.linspace(-8, 8, 1601).astype(np.float32)
    x64 = x.astype(np.float64)
    from scipy.special import erfc

    exact = 0.5 * x64 * erfc(-x64 / np.sqrt(2))
    tanh_form = 0.5 * x64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)))
    np.testing.assert_allclose(gelu_exact(Tensor(x)).asnumpy(), exact, atol=1e-6)
    np.testing.assert_allclose(gelu_tanh(Tensor(x)).asnumpy(), tanh_form, atol=1e-6)
    assert np.abs(exact - tanh_form).max() > 1e-4  # the two really are different functions


def test_layer_norm_uses_its_weight_and_bias():
    norm = LayerNorm(4, eps=1e-5)
    norm.weight.set_data(Tensor(np.array([1, 2, 3, 4], np.float32)))
    norm.bias.set_data(Tensor(np.array([0, 1, 0, 1], np.float32)))
    x = np.array([[1, 2, 3, 10]], np.float32)
    expected = (x - x.mean()) / np.sqrt(x.var() + 1e-5) * [1, 2, 3, 4] + [0, 1, 0, 1]
    np.testing.assert_allclose(norm(Tensor(x)).asnumpy(), expected, rtol=1e-5)
    assert [p.name for p in norm.get_parameters()] == ["weight", "bias"]


def test_dropout_masks_have_no_visible_structure():
    """Kept share, neighbour correlation and row means of a 1M-element mask match independent draws."""
    mask = keep_mask(key=12345, call=3, size=1 << 20, p=0.1).astype(np.float64)
    assert abs(mask.mean() - 0.9) < 0.002
    centred = mask - mask.mean()
    spectrum = np.abs(np.fft.rfft(centred)) ** 2
    autocorrelation = np.fft.irfft(spectrum)[1:2000] / (centred.var() * len(centred))
    assert np.abs(autocorrelation).max() < 0.01
    row_means = mask.reshape(1024, 1024).mean(axis=1)
    assert 0.7 < row_means.std() / np.sqrt(0.09 / 1024) < 1.3
    other_call = keep_mask(key=12345, call=4, size=1 << 20, p=0.1)
    assert abs(np.corrcoef(mask, other_call)[0, 1]) < 0.01


def test_linear_matches_its_formula(rng):
    w, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    layer = Linear(Tensor(w), Tensor(b))
    np.testing.assert_allclose(layer(Tensor(x)).asnumpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)
