import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from gptft import GPT, GPTConfig
from gptft.errors import ConfigError, ModelFileError
from gptft.model.config import LoRAConfig
from gptft.model.layers import named_parameters
from gptft.model.lora import LoRALinear, add_adapters, count_parameters, load_adapted, save_adapter
from helpers import random_ids

ALL_TARGETS = ("c_attn", "c_proj", "c_fc")
NO_DROPOUT = dict(embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)


def adapted(layout="post_ln", targets=ALL_TARGETS, rank=4, seed=0):
    """A tiny GPT grown by 3 task tokens, with adapters whose B is random (at zero they would hide a bug)."""
    model = GPT(GPTConfig.preset("tiny", layout=layout, **NO_DROPOUT), seed=seed)
    model.resize_token_embeddings(102, seed=seed)
    add_adapters(model, LoRAConfig(rank=rank, alpha=8.0, targets=targets), first_new_row=99, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, param in named_parameters(model).items():
        if name.endswith("lora_b"):
            param.set_data(Tensor(rng.normal(0, 0.2, param.shape).astype(np.float32)))
    return model


def test_the_rank_r_update_equals_the_dense_update_it_represents(rng):
    from gptft.model.layers import Linear

    base = Linear(Tensor(rng.normal(size=(6, 5)).astype(np.float32)), Tensor(rng.normal(size=6).astype(np.float32)))
    layer = LoRALinear(base, rank=2, alpha=3.0, dropout=0.0, rng=rng)
    a, b = rng.normal(size=(2, 5)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    layer.lora_a.set_data(Tensor(a))
    layer.lora_b.set_data(Tensor(b))
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    dense = base.weight.asnumpy() + (3.0 / 2) * b @ a
    np.testing.assert_allclose(layer.delta(), (3.0 / 2) * b @ a, rtol=1e-5, atol=1e-6)
    expected = x @ dense.T + base.bias.asnumpy()
    np.testing.assert_allclose(layer(Tensor(x)).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    assert np.linalg.matrix_rank(layer.delta()) == 2


def test_new_adapters_leave_the_model_unchanged_and_freeze_it(rng):
    model = GPT(GPTConfig.preset("tiny", **NO_DROPOUT))
    ids = random_ids(rng, (2, 7))
    before = model.lm_logits(model(ids)).asnumpy()
    model.resize_token_embeddings(102)
    add_adapters(model, LoRAConfig(rank=4), first_new_row=99)
    after = model.lm_logits(model(ids)).asnumpy()
    np.testing.assert_array_equal(after[..., :99], before)  # B starts at zero
    trainable = {n for n, p in named_parameters(model).items() if p.requires_grad}
    assert trainable == {"wte.added"} | {f"h.{i}.attn.{layer}.lora_{ab}" for i in range(2)
                                          for layer in ("c_attn", "c_proj") for ab in "ab"}


@pytest.mark.parametrize("targets", [("c_attn", "attn.c_proj"), ALL_TARGETS, ("mlp.c_proj",)])
def test_trainable_parameter_counts(targets):
    model = adapted(targets=targets)
    shapes = {"c_attn": (32, 96), "attn.c_proj": (32, 32), "c_fc": (32, 128), "mlp.c_proj": (128, 32)}
    chosen = {"attn.c_proj", "mlp.c_proj"} if "c_proj" in targets else set()
    chosen |= {t for t in targets if t != "c_proj"}
    expected = 2 * sum(4 * (n_in + n_out) for t, (n_in, n_out) in shapes.items() if t in chosen) + 3 * 32
    trained, total = count_parameters(model)
    assert trained == expected
    plain = GPT(GPTConfig.preset("tiny", vocab_size=102)).num_parameters()
    assert total == plain + expected - 3 * 32  # the new rows moved to their own table, not added


@pytest.mark.parametrize("layout", ["post_ln", "pre_ln"])
def test_merged_and_unmerged_logits_are_equal(tmp_path, rng, layout):
    model = adapted(layout)
    ids = random_ids(rng, (3, 9), vocab=102)
    unmerged = model.lm_logits(model(ids)).asnumpy()
    model.save_pretrained(tmp_path)
    merged = GPT.from_pretrained(tmp_path)
    assert merged.lora is None and merged.config.vocab_size == 102
    np.testing.assert_allclose(merged.lm_logits(merged(ids)).asnumpy(), unmerged, rtol=1e-5, atol=2e-5)


def test_compiled_adapters_compute_what_pynative_does(rng):
    model = adapted()
    ids = random_ids(rng, (2, 6), vocab=102)
    eager = model(ids).asnumpy()
    ms.set_context(mode=ms.GRAPH_MODE)
    np.testing.assert_allclose(model(ids).asnumpy(), eager, rtol=1e-5, atol=1e-5)


def test_an_adapter_only_folder_rebuilds_the_same_model(tmp_path, rng):
    base = tmp_path / "base"
    GPT(GPTConfig.preset("tiny", **NO_DROPOUT), seed=3).save_pretrained(base)
    model = GPT.from_pretrained(base)
    model.resize_token_embeddings(102, seed=1)
    add_adapters(model, LoRAConfig(rank=2, targets=ALL_TARGETS), first_new_row=99, seed=5)
    for name, param in named_parameters(model).items():
        if name.endswith("lora_b"):
            param.set_data(Tensor(rng.normal(0, 0.2, param.shape).astype(np.float32)))
    save_adapter(model, tmp_path / "adapter", base=str(base))
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["adapter.json", "adapter.safetensors"]
    rebuilt = load_adapted(tmp_path / "adapter")
    ids = random_ids(rng, (2, 8), vocab=102)
    np.testing.assert_array_equal(rebuilt(ids).asnumpy(), model(ids).asnumpy())
    # The adapters of another rank do not fit: refused, naming the file.
    other = tmp_path / "other"
    model_r4 = GPT.from_pretrained(base)
    model_r4.resize_token_embeddings(102)
    add_adapters(model_r4, LoRAConfig(rank=4, targets=ALL_TARGETS), first_new_row=99)
    save_adapter(model_r4, other, base=str(base))
    (other / "adapter.json").write_text((tmp_path / "adapter" / "adapter.json").read_text())
    with pytest.raises(ModelFileError, match="adapter.safetensors does not fit its base model .*lora_a has shape"):
        load_adapted(other)


@pytest.mark.parametrize("values, message", [
    ({"rank": -1}, "rank must be an integer >= 0"),
    ({"alpha": 0}, "alpha must be positive"),
    ({"targets": ("c_attn", "q_proj")}, "targets must name some of"),
    ({"targets": ()}, "targets must name some of"),
])
def test_bad_lora_settings_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        LoRAConfig(**values)
