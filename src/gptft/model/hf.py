"""Reading and writing GPT weights in the Hugging Face folder layout (`openai-gpt` and `gpt2` families).

A folder holds `config.json` and `model.safetensors` (or shards listed in `model.safetensors.index.json`).
Loading never unpickles: a `pytorch_model.bin` is refused with the command that converts it. The released
checkpoints store linear layers as `Conv1D`, `(in, out)`; gptft's are `(out, in)`, so those are transposed.
This module turns files into arrays and back; `GPT.from_pretrained` and `GPT.save_pretrained` use it, and
the folders they write load in `transformers` too.
"""

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from ..errors import ModelFileError
from .config import GPTConfig
from .hub import MODEL_FILES, resolve_folder

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers some checkpoints carry: the causal mask, which gptft builds itself.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
_ACTIVATION_FROM_HF = {
    # transformers' OpenAIGPT maps afn "gelu" to its tanh form (ACT_FNS["gelu"] = gelu_new).
    "openai-gpt": {"gelu": "gelu_new"},
    "gpt2": {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu"},
}
_CONVERT_HINT = (
    "gptft never unpickles weights; convert the folder once, in an environment you trust, with "
    "`python -c \"from transformers import AutoModelForCausalLM as M; "
    "M.from_pretrained('{folder}').save_pretrained('{folder}', safe_serialization=True)\"`"
)


def _family(config: GPTConfig) -> str:
    return "openai-gpt" if config.layout == "post_ln" else "gpt2"


def _hf_key(name: str, family: str) -> str:
    """The Hugging Face key of one of gptft's parameter names."""
    if family == "openai-gpt":
        if name.startswith("wte."):
            return "tokens_embed." + name[4:]
        if name.startswith("wpe."):
            return "positions_embed." + name[4:]
    return name


# gptft fields that a Hugging Face key holds, by family; `layout` follows from `model_type`.
_HF_KEY = {"vocab_size": "vocab_size", "block_size": "n_positions", "n_embd": "n_embd", "n_layer": "n_layer",
           "n_head": "n_head", "layer_norm_epsilon": "layer_norm_epsilon", "embd_pdrop": "embd_pdrop",
           "attn_pdrop": "attn_pdrop", "resid_pdrop": "resid_pdrop", "init_std": "initializer_range",
           "layout": "model_type"}
_ACTIVATION_KEY = {"openai-gpt": "afn", "gpt2": "activation_function"}
_FAMILY_KEYS = {"openai-gpt": {}, "gpt2": {"activation": "activation_function", "n_inner": "n_inner"}}
# The block of gptft fields transformers has no key for (GPT-1's MLP width, exact GELU in GPT-1).
EXTRA_BLOCK = "gptft"


def config_from_hf(values: dict, source: str) -> GPTConfig:
    """A `GPTConfig` from a Hugging Face `config.json`: its keys are the truth.

    The `gptft` block holds only what transformers has no key for; a folder from gptft 0.1.0 holds every
    field there, which must then agree with the Hugging Face keys. Keys that disagree with each other are
    refused, naming them.
    """
    family = values.get("model_type")
    if family not in _ACTIVATION_FROM_HF:
        raise ModelFileError(f"{source}: model_type {family!r} is not a GPT-1 ('openai-gpt') or GPT-2 ('gpt2') model")
    act_key = _ACTIVATION_KEY[family]
    act_name = values.get(act_key, "gelu" if family == "openai-gpt" else "gelu_new")
    activation = _ACTIVATION_FROM_HF[family].get(act_name)
    if activation is None:
        raise ModelFileError(f"{source}: {act_key}={act_name!r} is not supported (supported: "
                             f"{', '.join(_ACTIVATION_FROM_HF[family])})")
    for flag in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if values.get(flag):
            raise ModelFileError(f"{source}: {flag}=true is not supported by gptft's GPT")
    if values.get("scale_attn_weights") is False or values.get("tie_word_embeddings") is False:
        raise ModelFileError(f"{source}: gptft's GPT scales attention and ties the LM head; this config does not")
    if "n_ctx" in values and "n_positions" in values and values["n_ctx"] != values["n_positions"]:
        raise ModelFileError(f"{source}: n_ctx ({values['n_ctx']}) and n_positions ({values['n_positions']}) "
                             "disagree; gptft reads sequences up to n_positions: make them equal")
    try:
        fields = dict(
            vocab_size=values["vocab_size"], block_size=values["n_positions"], n_embd=values["n_embd"],
            n_layer=values["n_layer"], n_head=values["n_head"], n_inner=values.get("n_inner"),
            activation=activation, layer_norm_epsilon=values.get("layer_norm_epsilon", 1e-5),
            embd_pdrop=values.get("embd_pdrop", 0.1), attn_pdrop=values.get("attn_pdrop", 0.1),
            resid_pdrop=values.get("resid_pdrop", 0.1),
            layout="post_ln" if family == "openai-gpt" else "pre_ln",
            init_std=values.get("initializer_range", 0.02))
    except KeyError as missing:
        raise ModelFileError(f"{source}: required key {missing} is missing") from None
    extra = values.get(EXTRA_BLOCK) or {}
    if not isinstance(extra, dict):
        raise ModelFileError(f"{source}: {EXTRA_BLOCK} must be a mapping of GPTConfig fields")
    said_by_hf = {**_HF_KEY, **_FAMILY_KEYS[family]}
    for name, value in extra.items():
        key = said_by_hf.get(name)
        if key is None:
            fields[name] = value  # a field transformers cannot say (unknown names are refused below)
        elif value != fields[name]:
            raise ModelFileError(f"{source}: {key} says {values.get(key)!r} but {EXTRA_BLOCK}.{name} says {value!r}; "
                                 f"the Hugging Face key is the one to edit: delete {EXTRA_BLOCK}.{name}")
    try:
        return GPTConfig.from_dict(fields)
    except ValueError as error:
        raise ModelFileError(f"{source}: {error}") from None


def config_to_hf(config: GPTConfig) -> dict:
    """The `config.json` of `config`: transformers' keys, plus a `gptft` block only for what they cannot say."""
    family = _family(config)
    values = {
        "model_type": family, "vocab_size": config.vocab_size, "n_positions": config.block_size,
        "n_ctx": config.block_size, "n_embd": config.n_embd, "n_layer": config.n_layer,
        "n_head": config.n_head, "layer_norm_epsilon": config.layer_norm_epsilon,
        "embd_pdrop": config.embd_pdrop, "attn_pdrop": config.attn_pdrop, "resid_pdrop": config.resid_pdrop,
        "initializer_range": config.init_std,
    }
    extra = {}
    if family == "openai-gpt":
        values.update(architectures=["OpenAIGPTLMHeadModel"], afn="gelu")
        if config.activation != "gelu_new":
            extra["activation"] = config.activation  # transformers' GPT-1 "gelu" is the tanh form
        if config.n_inner is not None:
            extra["n_inner"] = config.n_inner  # transformers' GPT-1 MLP is always 4 * n_embd
    else:
        values.update(architectures=["GPT2LMHeadModel"], n_inner=config.n_inner,
                      activation_function=config.activation)
    if extra:
        values[EXTRA_BLOCK] = extra
    return values


def _open_tensors(path: Path) -> dict[str, np.ndarray]:
    try:
        with safe_open(str(path), framework="numpy") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise ModelFileError(f"{path}: not a readable safetensors file (truncated or corrupt?): {error}") from None


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    """All tensors of a folder's safetensors file(s), keyed without the `transformer.` prefix."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        raw = _open_tensors(single)
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as error:
            raise ModelFileError(f"{index}: not a valid shard index ({error})") from None
        raw = {}
        for shard in sorted(set(weight_map.values())):
            raw.update(_open_tensors(folder / shard))
    elif any((folder / name).exists() for name in ("pytorch_model.bin", "tf_model.h5", "model.ckpt.index")):
        raise ModelFileError(f"{folder} holds only pickled or TensorFlow weights. " + _CONVERT_HINT.format(folder=folder))
    else:
        raise ModelFileError(f"{folder} has no model.safetensors (or model.safetensors.index.json)")
    weights = {}
    for key, value in raw.items():
        key = key.removeprefix("transformer.")
        if not key.endswith(_IGNORED_SUFFIXES):
            weights[key] = value
    return weights


def read_folder(name_or_path) -> tuple[Path, GPTConfig, dict[str, np.ndarray]]:
    """(folder, config, tensors keyed by Hugging Face name) of a model folder or hub name.

    Raises:
        ModelFileError: `config.json` or the weights are missing or unreadable.
    """
    folder = resolve_folder(name_or_path, MODEL_FILES)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelFileError(f"{folder} has no config.json, so it is not a Hugging Face model folder")
    try:
        hf_values = json.loads(config_path.read_text())
    except ValueError as error:
        raise ModelFileError(f"{config_path}: not valid JSON ({error})") from None
    config = config_from_hf(hf_values, str(config_path))
    weights = read_weights(folder)
    check_keys_against_tensors(config, weights, config_path)
    return folder, config, weights


def check_keys_against_tensors(config: GPTConfig, weights: dict[str, np.ndarray], source) -> None:
    """Refuse a folder whose tensors contradict its `config.json`, naming the key (as transformers would).

    `from_hf_tensors` then checks every tensor; this names the key a user would edit instead of a tensor.
    """
    family = _family(config)
    inner_key = "n_inner" if family == "gpt2" else f"{EXTRA_BLOCK}.n_inner" if config.n_inner else "4 * n_embd"
    said = {"n_embd": config.n_embd, "vocab_size": config.vocab_size, "n_positions": config.block_size,
            inner_key: config.inner_size}
    found = {}
    embed, positions = weights.get(_hf_key("wte.weight", family)), weights.get(_hf_key("wpe.weight", family))
    if embed is not None and embed.ndim == 2:
        found["vocab_size"] = (embed.shape[0], f"{_hf_key('wte.weight', family)} has {embed.shape[0]} rows")
        found["n_embd"] = (embed.shape[1], f"{_hf_key('wte.weight', family)} is {embed.shape[1]} wide")
    if positions is not None and positions.ndim == 2:
        found["n_positions"] = (positions.shape[0], f"{_hf_key('wpe.weight', family)} has {positions.shape[0]} rows")
    fc = weights.get("h.0.mlp.c_fc.weight")  # Conv1D: (in, out)
    if fc is not None and fc.ndim == 2:
        found[inner_key] = (fc.shape[1], f"h.0.mlp.c_fc.weight has {fc.shape[1]} outputs")
    for key, (value, evidence) in found.items():
        if value != said[key]:
            raise ModelFileError(f"{source}: {key} is {said[key]} but {evidence}; the config and the weights "
                                 "do not belong together")
    blocks = [k for k in weights if k.startswith("h.") and k.endswith(".attn.c_attn.weight")]
    if blocks and len(blocks) != config.n_layer:
        raise ModelFileError(f"{source}: n_layer is {config.n_layer} but the weights hold {len(blocks)} blocks; "
                             "the config and the weights do not belong together")


def from_hf_tensors(weights: dict[str, np.ndarray], shapes: dict[str, tuple], config: GPTConfig,
                    folder) -> dict[str, np.ndarray]:
    """gptft's arrays `{name: array}` for the parameters `shapes` (`{name: shape}`), from a folder's tensors.

    Conv1D matrices are transposed to `(out, in)`; a tied `lm_head.weight` stands in for a missing token
    embedding. Every parameter must be present with its shape and every tensor used.

    Raises:
        ModelFileError: naming each missing, unexpected or mis-shaped tensor, or an untied LM head.
    """
    weights = dict(weights)
    family = _family(config)
    tied = weights.pop("lm_head.weight", None)
    embed_key = _hf_key("wte.weight", family)
    if tied is not None:
        if embed_key not in weights:
            weights[embed_key] = tied  # some writers keep only the head's copy of the tied matrix
        elif tied.shape != weights[embed_key].shape or not np.array_equal(tied, weights[embed_key]):
            raise ModelFileError(f"{folder}: lm_head.weight differs from {embed_key}; gptft ties the LM head "
                                 "to the token embedding and cannot load an untied head")
    arrays, problems = {}, []
    for name, shape in shapes.items():
        key = _hf_key(name, family)
        if key not in weights:
            problems.append(f"missing tensor {key}")
            continue
        value = weights.pop(key)
        conv1d = name.endswith(_CONV1D)
        expected = tuple(reversed(shape)) if conv1d else tuple(shape)  # as stored in the file
        if tuple(value.shape) != expected:
            problems.append(f"tensor {key} has shape {tuple(value.shape)}, the config implies {expected}")
            continue
        arrays[name] = np.ascontiguousarray(value.T if conv1d else value, dtype=np.float32)
    problems += [f"unexpected tensor {key}" for key in sorted(weights)]
    if problems:
        raise ModelFileError(f"{folder}: weights do not fit the config: " + "; ".join(problems))
    return arrays


def write_folder(folder, config: GPTConfig, arrays: dict[str, np.ndarray]) -> None:
    """Write `config.json` and `model.safetensors` of gptft's `{name: array}`; each file appears whole or not at all."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    family = _family(config)
    tensors = {_hf_key(name, family): np.ascontiguousarray(value.T if name.endswith(_CONV1D) else value)
               for name, value in arrays.items()}
    _write_atomically(folder / "model.safetensors", lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    text = json.dumps(config_to_hf(config), indent=2) + "\n"
    _write_atomically(folder / "config.json", lambda tmp: tmp.write_text(text))


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
