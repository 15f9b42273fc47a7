import pytest

from gptft import GPTConfig


def test_presets_have_the_released_shapes():
    gpt1 = GPTConfig.preset("openai-gpt")
    assert (gpt1.vocab_size, gpt1.block_size, gpt1.n_embd, gpt1.n_layer, gpt1.n_head) == (40478, 512, 768, 12, 12)
    assert gpt1.layout == "post_ln" and gpt1.inner_size == 3072 and gpt1.activation == "gelu_new"
    gpt2 = GPTConfig.preset("gpt2")
    assert (gpt2.vocab_size, gpt2.block_size, gpt2.layout) == (50257, 1024, "pre_ln")
    tiny = GPTConfig.preset("tiny", n_layer=3)
    assert (tiny.n_embd, tiny.n_layer, tiny.vocab_size) == (32, 3, 99)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        GPTConfig().n_layer = 3


@pytest.mark.parametrize("changes, message", [
    ({"n_head": 5}, "n_head"),
    ({"layout": "sandwich"}, "layout"),
    ({"activation": "relu"}, "activation"),
    ({"attn_pdrop": 1.0}, "attn_pdrop"),
    ({"n_layer": 0}, "n_layer"),
    ({"vocab_size": 10.5}, "vocab_size"),
])
def test_invalid_fields_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**changes)


def test_unknown_preset_and_keys_are_named():
    with pytest.raises(ValueError, match="gpt5"):
        GPTConfig.preset("gpt5")
    with pytest.raises(ValueError, match="n_embed"):
        GPTConfig.from_dict({"n_embed": 32})


def test_dict_round_trip():
    config = GPTConfig.preset("tiny", layout="pre_ln", n_inner=48)
    assert GPTConfig.from_dict(config.to_dict()) == config
