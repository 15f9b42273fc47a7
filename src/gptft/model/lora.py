"""Low-rank adapters (LoRA, Hu et al. 2021) on a GPT's linear layers.

`add_adapters(model, config, first_new_row)` freezes every weight of the backbone, gives each targeted
linear layer a trainable update `(alpha / r) · B A` (A: `(r, in)`, B: `(out, r)`, B starting at zero so
the model starts as the one loaded), and makes the token-embedding rows from `first_new_row` on (the
task tokens, which the pre-trained model never saw) a separate trainable table. Only those, and whatever
else the caller leaves trainable (a task head), receive gradients and Adam moments, and only they go
into training checkpoints.

`merged_arrays` folds the adapters back into plain weights: the model a run exports is an ordinary GPT
in the Hugging Face layout. `save_adapter` / `load_adapted` write and read the small files of an
adapter-only export, which name the base model they sit on.
"""

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
from mindspore import Parameter, Tensor
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..errors import ModelFileError
from .config import LoRAConfig
from .gpt import GPT, Embedding
from .layers import Dropout, Linear, fit_problems, named_parameters

ADAPTER_NAMES = ("lora_a", "lora_b", "added")  # the parameters adapters add, by attribute name
ADAPTER_FILE, ADAPTER_CONFIG = "adapter.safetensors", "adapter.json"


class LoRALinear(Linear):
    """A frozen `Linear` plus a trainable rank-`rank` update: `y = x W^T + b + (alpha/rank) · drop(x) A^T B^T`.

    The weight and bias keep the names (and the tensors) of the layer it replaces.
    """

    def __init__(self, base: Linear, rank: int, alpha: float, dropout: float, rng: np.random.Generator):
        super().__init__(base.weight, base.bias)
        n_out, n_in = base.weight.shape
        self.weight.requires_grad = False
        self.bias.requires_grad = False
        # A as in the paper's reference code: uniform with the fan-in bound of a default linear layer; B zero.
        bound = 1.0 / math.sqrt(n_in)
        self.lora_a = Parameter(Tensor(rng.uniform(-bound, bound, (rank, n_in)).astype(np.float32)), name="lora_a")
        self.lora_b = Parameter(Tensor(np.zeros((n_out, rank), np.float32)), name="lora_b")
        self.scale = float(alpha) / rank
        self.dropout = Dropout(dropout)

    def construct(self, x):
        down = self.matmul(self.dropout(x.reshape(-1, x.shape[-1])), self.lora_a)  # (N, r)
        delta = self.matmul(down, self.lora_b) * self.scale
        return super().construct(x) + delta.reshape(x.shape[:-1] + (-1,))

    def delta(self) -> np.ndarray:
        """The dense update `(alpha/rank) · B A` the adapter stands for, shaped like the weight `(out, in)`."""
        return self.scale * (self.lora_b.asnumpy() @ self.lora_a.asnumpy())


def _targeted(path: str, targets) -> bool:
    """Whether the linear layer at `path` (`h.3.attn.c_proj`) is one of `targets` (`c_proj` matches both the
    attention's and the MLP's; `attn.c_proj` only the attention's)."""
    return any(path == t or path.endswith("." + t) for t in targets)


def add_adapters(model: GPT, config: LoRAConfig, first_new_row: int, seed: int = 0) -> None:
    """Freeze `model` and attach the adapters `config` describes (see the module docstring).

    `first_new_row`: embedding rows from this one on stay trainable (the task tokens added on top of the
    pre-trained vocabulary); equal to the vocabulary size when there are none.
    """
    if config.rank < 1:
        raise ValueError(f"LoRA needs a rank >= 1, got {config.rank}")
    if model.lora is not None:
        raise ValueError("this model already has adapters")
    for param in model.get_parameters():
        param.requires_grad = False
    rng = np.random.default_rng(seed)
    layers = [(path, cell) for path, cell in model.cells_and_names() if isinstance(cell, Linear)]
    for path, cell in layers:
        if _targeted(path, config.targets):
            parent_path, _, attr = path.rpartition(".")
            setattr(_cell_at(model, parent_path), attr, LoRALinear(cell, config.rank, config.alpha, config.dropout, rng))
    _split_embedding(model.wte, first_new_row)
    model.lora = config


def _cell_at(model, path: str):
    """The sub-cell at a structural path (`h.3.attn`)."""
    cell = model
    for part in path.split("."):
        cell = cell[int(part)] if part.isdigit() else getattr(cell, part)
    return cell


def _split_embedding(embedding: Embedding, first_new_row: int) -> None:
    """Rows `first_new_row:` of the table become the trainable `added` table; the rest stays frozen."""
    table = embedding.weight.asnumpy()
    if not 0 <= first_new_row <= table.shape[0]:
        raise ValueError(f"first_new_row must be in 0..{table.shape[0]}, got {first_new_row}")
    if first_new_row == table.shape[0]:
        return
    embedding.weight = Parameter(Tensor(table[:first_new_row]), name=embedding.weight.name, requires_grad=False)
    embedding.added = Parameter(Tensor(table[first_new_row:]), name="added")


def _is_adapter(name: str) -> bool:
    return name.rpartition(".")[2] in ADAPTER_NAMES


def _adapter_parameters(model: GPT) -> dict:
    """The parameters the adapters added (`h.0.attn.c_attn.lora_a`, ..., `wte.added`), by name."""
    return {name: p for name, p in named_parameters(model).items() if _is_adapter(name)}


def merged_arrays(model: GPT, arrays: dict) -> dict:
    """`arrays` (the model's weights by name, adapters included) with every adapter folded into its weight
    and the embedding's rows joined: the weights of the plain GPT the adapted model computes."""
    merged = dict(arrays)
    for path, cell in model.cells_and_names():
        if isinstance(cell, LoRALinear):
            merged[f"{path}.weight"] = merged[f"{path}.weight"] + cell.delta()
        elif isinstance(cell, Embedding) and cell.added is not None:
            merged[f"{path}.weight"] = np.concatenate([merged[f"{path}.weight"], merged[f"{path}.added"]])
    return {name: a for name, a in merged.items() if not _is_adapter(name)}


def save_adapter(model: GPT, folder, base: str) -> None:
    """Write the adapters' tensors (`adapter.safetensors`) and how to rebuild the model around them
    (`adapter.json`: the base model `base`, a hub name or folder, and the adapters' settings)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.ascontiguousarray(p.asnumpy()) for name, p in _adapter_parameters(model).items()}
    save_file(arrays, str(folder / ADAPTER_FILE))
    first_new_row = model.wte.weight.shape[0]
    settings = {"base_model": base, "vocab_size": model.config.vocab_size, "first_new_row": first_new_row,
                **asdict(model.lora)}
    (folder / ADAPTER_CONFIG).write_text(json.dumps(settings, indent=1) + "\n")


def load_adapted(folder, **overrides) -> GPT:
    """The model an adapter-only folder describes: its base model, grown to the task vocabulary, with the
    saved adapters attached (`overrides`: GPTConfig fields such as dropouts, as in `GPT.from_pretrained`).

    Raises:
        ModelFileError: `adapter.json` or `adapter.safetensors` is unreadable, or does not fit the base model.
    """
    folder = Path(folder)
    try:
        settings = json.loads((folder / ADAPTER_CONFIG).read_text())
        base, vocab_size, first_new_row = settings.pop("base_model"), settings.pop("vocab_size"), settings.pop("first_new_row")
        config = LoRAConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{folder / ADAPTER_CONFIG}: unreadable ({error})") from None
    try:
        arrays = load_file(str(folder / ADAPTER_FILE))
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{folder / ADAPTER_FILE}: unreadable ({error})") from None
    model = GPT.from_pretrained(base, **overrides)
    if model.config.vocab_size != first_new_row:
        raise ModelFileError(f"{folder / ADAPTER_CONFIG}: its base model {base} has {model.config.vocab_size} token "
                             f"rows, the adapters were trained on one with {first_new_row}")
    model.resize_token_embeddings(vocab_size)
    add_adapters(model, config, first_new_row)
    params = _adapter_parameters(model)
    problems = fit_problems(params, {name: a.shape for name, a in arrays.items()})
    if problems:
        raise ModelFileError(f"{folder / ADAPTER_FILE} does not fit its base model {base}: " + "; ".join(problems[:8]))
    for name, param in params.items():
        param.set_data(Tensor(arrays[name]))
    return model


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts of a cell, dropout state excluded."""
    params = named_parameters(model, weights_only=True).values()
    return (sum(int(np.prod(p.shape)) for p in params if p.requires_grad),
            sum(int(np.prod(p.shape)) for p in params))
