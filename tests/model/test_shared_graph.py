import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from mindspore._extends.parse import parser

from gptft import GPT, GPTConfig
from gptft.model.lora import LoRALinear
from helpers import random_ids

NO_DROPOUT = dict(embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)


def keys(model):
    return [block.cell_init_args for block in model.h]


def test_blocks_share_a_key_until_one_of_them_changes():
    model = GPT(GPTConfig.preset("tiny", n_layer=3))
    first = keys(model)
    assert len(set(first)) == 1 and first[0].startswith("lazy_inline_")  # the prefix MindSpore looks for
    model.set_train(True)
    assert len(set(keys(model))) == 1 and keys(model)[0] != first[0]  # training compiles another graph
    model.h[2].mlp.c_fc.bias.requires_grad = False
    assert keys(model)[0] == keys(model)[1] != keys(model)[2]
    model.h[0].attn.scale = 0.5  # a constant the graph folds in
    assert len(set(keys(model))) == 3
    other = GPT(GPTConfig.preset("tiny", n_layer=3, block_size=16))  # another causal mask, by value
    assert keys(other)[0] != keys(GPT(GPTConfig.preset("tiny", n_layer=3)))[0]


@pytest.fixture
def parsed(monkeypatch):
    """How many times MindSpore's parser has read each function since the test began."""
    counts = {}
    original = parser.Parser.__init__

    def counting(self, fn, *args, **kwargs):
        name = getattr(fn, "__qualname__", repr(fn))
        counts[name] = counts.get(name, 0) + 1
        original(self, fn, *args, **kwargs)

    monkeypatch.setattr(parser.Parser, "__init__", counting)
    return counts


def test_the_blocks_compile_once_and_a_changed_block_on_its_own(rng, parsed):
    ids = random_ids(rng, (2, 6))
    plain, changed = (GPT(GPTConfig.preset("tiny", n_layer=3, **NO_DROPOUT)) for _ in range(2))
    # A script's change to the middle block only: an adapter whose random B changes what the block computes.
    attn = changed.h[1].attn
    attn.c_attn = LoRALinear(attn.c_attn, rank=2, alpha=2.0, dropout=0.0, rng=rng)
    attn.c_attn.lora_b.set_data(Tensor(rng.normal(0, 0.5, attn.c_attn.lora_b.shape).astype(np.float32)))
    eager = [model(ids).asnumpy() for model in (plain, changed)]
    assert np.abs(eager[1] - eager[0]).max() > 0.05  # a thousand times the tolerance below

    ms.set_context(mode=ms.GRAPH_MODE)
    np.testing.assert_allclose(plain(ids).asnumpy(), eager[0], rtol=1e-5, atol=1e-5)
    assert parsed["Block.construct"] == 1
    parsed.clear()
    np.testing.assert_allclose(changed(ids).asnumpy(), eager[1], rtol=1e-5, atol=1e-5)
    assert parsed["Block.construct"] == 2  # blocks 0 and 2 share one graph, block 1 has its own
