import json

import mindspore as ms
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from gptft import GPT, GPTConfig, ModelFileError
from helpers import hf_outputs, hf_reference_model, max_relative_difference

FAMILIES = ["openai-gpt", "gpt2"]


def our_outputs(model, ids):
    hidden = model(ms.Tensor(ids.astype(np.int32)))
    return hidden.asnumpy(), model.lm_logits(hidden).asnumpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_transformers_weights_with_the_same_outputs(tmp_path, rng, family):
    reference = hf_reference_model(family)
    reference.save_pretrained(tmp_path / "hf")
    model = GPT.from_pretrained(tmp_path / "hf")
    assert model.config.layout == ("post_ln" if family == "openai-gpt" else "pre_ln")
    ids = rng.integers(0, 99, size=(3, 17))
    hidden, logits = our_outputs(model, ids)
    ref_hidden, ref_logits = hf_outputs(reference, ids)
    assert max_relative_difference(hidden, ref_hidden) < 1e-4
    assert max_relative_difference(logits, ref_logits) < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_released_layout_without_prefix_with_mask_buffers(tmp_path, rng, family):
    """The hub's files: keys without `transformer.`, causal-mask buffers stored, no lm_head copy."""
    reference = hf_reference_model(family, seed=1)
    reference.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    released = {k.removeprefix("transformer."): v for k, v in tensors.items() if not k.startswith("lm_head")}
    for layer in range(2):
        released[f"h.{layer}.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.float32))
    released["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    save_file(released, tmp_path / "model.safetensors")
    hidden, _ = our_outputs(GPT.from_pretrained(tmp_path), ids := rng.integers(0, 99, size=(2, 9)))
    assert max_relative_difference(hidden, hf_outputs(reference, ids)[0]) < 1e-4


def test_lm_head_only_copy_of_tied_matrix_is_used(tmp_path, rng):
    reference = hf_reference_model("gpt2", seed=2)
    reference.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["lm_head.weight"] = tensors.pop("transformer.wte.weight")
    save_file(tensors, tmp_path / "model.safetensors")
    ids = rng.integers(0, 99, size=(2, 5))
    _, logits = our_outputs(GPT.from_pretrained(tmp_path), ids)
    assert max_relative_difference(logits, hf_outputs(reference, ids)[1]) < 1e-4


def test_untied_lm_head_is_refused(tmp_path):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["lm_head.weight"] = tensors["tokens_embed.weight"] + 1
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ModelFileError, match="lm_head.weight differs"):
        GPT.from_pretrained(tmp_path)


def test_sharded_checkpoint(tmp_path, rng):
    reference = hf_reference_model("openai-gpt", seed=3)
    reference.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    ids = rng.integers(0, 99, size=(2, 6))
    hidden, _ = our_outputs(GPT.from_pretrained(tmp_path), ids)
    assert max_relative_difference(hidden, hf_outputs(reference, ids)[0]) < 1e-4


@pytest.mark.parametrize("layout", ["post_ln", "pre_ln"])
def test_save_and_load_round_trip_is_identical(tmp_path, rng, layout):
    model = GPT(GPTConfig.preset("tiny", layout=layout, activation="gelu", n_inner=40), seed=7)
    model.resize_token_embeddings(102)
    model.save_pretrained(tmp_path)
    loaded = GPT.from_pretrained(tmp_path)
    assert loaded.config == model.config
    for ours, theirs in zip(model.trainable_params(), loaded.trainable_params()):
        assert ours.name == theirs.name
        np.testing.assert_array_equal(ours.asnumpy(), theirs.asnumpy())
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_folder_loads_in_transformers(tmp_path, rng, family):
    from transformers import AutoModelForCausalLM

    layout = "post_ln" if family == "openai-gpt" else "pre_ln"
    model = GPT(GPTConfig.preset("tiny", layout=layout), seed=4)
    model.save_pretrained(tmp_path)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = rng.integers(0, 99, size=(2, 8))
    hidden, logits = our_outputs(model, ids)
    assert max_relative_difference(logits, hf_outputs(theirs, ids)[1]) < 1e-4


def test_dropout_override_keeps_weights(tmp_path):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path, resid_pdrop=0.0, attn_pdrop=0.0, embd_pdrop=0.0)
    assert model.config.resid_pdrop == 0.0


def test_pickle_checkpoint_is_refused_with_the_conversion_command(tmp_path):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(ModelFileError, match="never unpickles.*save_pretrained"):
        GPT.from_pretrained(tmp_path)


def test_missing_config_and_weights_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="no config.json"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 99, "n_positions": 32,
                                                       "n_embd": 32, "n_layer": 2, "n_head": 4}))
    with pytest.raises(ModelFileError, match="no model.safetensors"):
        GPT.from_pretrained(tmp_path)


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["h.1.ln_2.bias"]
    tensors["h.0.attn.c_proj.weight"] = tensors["h.0.attn.c_proj.weight"][:, :16]
    tensors["h.7.mlp.extra"] = np.zeros(3, np.float32)
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ModelFileError) as error:
        GPT.from_pretrained(tmp_path)
    message = str(error.value)
    assert "missing tensor h.1.ln_2.bias" in message
    assert "tensor h.0.attn.c_proj.weight has shape (32, 16), the config implies (32, 32)" in message  # as stored
    assert "unexpected tensor h.7.mlp.extra" in message


def test_truncated_weights_file_is_reported(tmp_path):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ModelFileError, match="model.safetensors: not a readable safetensors file"):
        GPT.from_pretrained(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "bert"}, "model_type 'bert'"),
    ({"afn": "relu"}, "afn='relu' is not supported"),
    ({"n_head": 5}, "n_head"),
])
def test_unusable_config_is_named(tmp_path, change, message):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    values.pop("gptft", None)
    values.update(change)
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(ModelFileError, match=message):
        GPT.from_pretrained(tmp_path)


# config.json: the Hugging Face keys are the one source of truth.

def edited(folder, **changes):
    values = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    (folder / "config.json").write_text(json.dumps(values))
    return values


@pytest.mark.parametrize("name", ["gpt1", "gpt2"])
def test_folders_saved_by_0_1_0_keep_loading_to_the_same_outputs(tmp_path, name):
    import shutil
    from pathlib import Path

    folder = tmp_path / name
    shutil.copytree(Path(__file__).parent / "data" / f"saved-by-0.1.0-{name}", folder)
    saved = json.loads((folder / "config.json").read_text())
    model = GPT.from_pretrained(folder)
    assert model.config == GPTConfig.from_dict(saved["gptft"])  # the whole old block, read through the HF keys
    model.set_train(False)
    hidden = model(ms.Tensor(np.array([[1, 5, 9, 42, 7, 3]], np.int32))).asnumpy()
    np.testing.assert_allclose(hidden, np.load(folder / "hidden.npy"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["post_ln", "pre_ln"])
def test_new_folders_write_only_what_transformers_cannot_say(tmp_path, layout):
    GPT(GPTConfig.preset("tiny", layout=layout)).save_pretrained(tmp_path)
    assert "gptft" not in json.loads((tmp_path / "config.json").read_text())
    GPT(GPTConfig.preset("tiny", layout=layout, activation="gelu", n_inner=40)).save_pretrained(tmp_path / "odd")
    extra = json.loads((tmp_path / "odd" / "config.json").read_text()).get("gptft")
    # GPT-1 in transformers has no MLP width and only the tanh GELU; GPT-2 has keys for both.
    assert extra == ({"activation": "gelu", "n_inner": 40} if layout == "post_ln" else None)


def test_an_edited_hugging_face_key_is_what_loads(tmp_path):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    edited(tmp_path, attn_pdrop=0.3, layer_norm_epsilon=1e-6, initializer_range=0.01)
    config = GPT.from_pretrained(tmp_path).config
    assert (config.attn_pdrop, config.layer_norm_epsilon, config.init_std) == (0.3, 1e-6, 0.01)


def test_keys_that_disagree_with_the_old_block_are_refused_by_name(tmp_path):
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).parent / "data" / "saved-by-0.1.0-gpt1", tmp_path / "m")
    edited(tmp_path / "m", attn_pdrop=0.3)
    with pytest.raises(ModelFileError, match=r"attn_pdrop says 0.3 but gptft.attn_pdrop says 0.1; the Hugging Face "
                                             r"key is the one to edit: delete gptft.attn_pdrop"):
        GPT.from_pretrained(tmp_path / "m")


def test_n_ctx_and_n_positions_must_agree(tmp_path):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    edited(tmp_path, n_ctx=64)
    with pytest.raises(ModelFileError, match=r"n_ctx \(64\) and n_positions \(32\) disagree"):
        GPT.from_pretrained(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"n_embd": 64, "n_head": 4}, "n_embd is 64 but tokens_embed.weight is 32 wide"),
    ({"vocab_size": 120}, "vocab_size is 120 but tokens_embed.weight has 99 rows"),
    ({"n_positions": 64, "n_ctx": 64}, "n_positions is 64 but positions_embed.weight has 32 rows"),
    ({"n_layer": 3}, "n_layer is 3 but the weights hold 2 blocks"),
])
def test_tensors_that_contradict_a_key_are_refused_naming_it(tmp_path, change, message):
    GPT(GPTConfig.preset("tiny")).save_pretrained(tmp_path)
    edited(tmp_path, **change)
    with pytest.raises(ModelFileError, match=message + "; the config and the weights do not belong together"):
        GPT.from_pretrained(tmp_path)


def test_gpt2_mlp_width_key_is_checked_against_the_tensors(tmp_path):
    GPT(GPTConfig.preset("tiny", layout="pre_ln")).save_pretrained(tmp_path)
    edited(tmp_path, n_inner=64)
    with pytest.raises(ModelFileError, match="n_inner is 64 but h.0.mlp.c_fc.weight has 128 outputs"):
        GPT.from_pretrained(tmp_path)


@pytest.mark.parametrize("preset, width, heads, depth", [("gpt2-medium", 1024, 16, 24), ("gpt2-large", 1280, 20, 36)])
def test_bigger_gpt2s_load_at_their_shapes_with_the_same_outputs(tmp_path, rng, preset, width, heads, depth):
    """The released folders differ from gpt2's only in config.json. Full width, heads, vocabulary and
    positions with random weights; two blocks instead of all (each block has the same shapes)."""
    from transformers import GPT2Config

    hub = GPT2Config(n_embd=width, n_head=heads, n_layer=depth)  # the hub's config.json of that model
    expected = GPTConfig.preset(preset)
    assert (hub.vocab_size, hub.n_positions, hub.n_embd, hub.n_head, hub.n_layer) == (
        expected.vocab_size, expected.block_size, expected.n_embd, expected.n_head, expected.n_layer)
    reference = hf_reference_model("gpt2", seed=4, vocab_size=hub.vocab_size, n_positions=hub.n_positions,
                                   n_embd=width, n_head=heads, n_layer=2)
    reference.save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path)
    assert model.config == GPTConfig.preset(preset, n_layer=2)
    ids = rng.integers(0, hub.vocab_size, size=(2, 11))
    hidden, logits = our_outputs(model, ids)
    ref_hidden, ref_logits = hf_outputs(reference, ids)
    assert max_relative_difference(hidden, ref_hidden) < 1e-4
    assert max_relative_difference(logits, ref_logits) < 1e-4
