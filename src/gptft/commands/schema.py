"""What a run's YAML holds: `RunConfig` (`gptft train`) and `PretrainConfig` (`gptft pretrain`).

Each section is the config dataclass of the component it configures (`GPTConfig` fields under
`model.config`, `Task`, `DataConfig`, `TrainConfig`, ...), and each field's docstring is its documentation:
`reference_yaml` renders an example run with every key, its value and that docstring, which is what
`gptft schema` prints and what the README's schema shows (a test keeps the two equal).
"""

import ast
import dataclasses
import inspect
import string
import textwrap
from dataclasses import dataclass, field, fields

import yaml

from ..data.config import DataConfig, TextData
from ..errors import ConfigError
from ..model.config import GPTConfig
from ..tasks.task import Task
from ..training.config import TrainConfig
from ..training.device import check_settings

# The paper's pre-training recipe (Section 4.1): Adam at 2.5e-4, 2,000 warmup steps, cosine annealing,
# batches of 64; `train:` keys a pre-training config gives are laid over it.
PRETRAIN_RECIPE = TrainConfig(lr=2.5e-4, schedule="cosine", warmup=2000, batch_size=64, epochs=10)

_DROPOUTS = {"embd_pdrop", "attn_pdrop", "resid_pdrop"}


@dataclass(frozen=True)
class ModelSection:
    """Which backbone to start from; a plain string means `pretrained`."""

    pretrained: str = ""
    """A hub name (`openai-gpt`, `gpt2`, `gpt2-medium`, `gpt2-large`) or a folder (Hugging Face layout, or a gptft pretrain output)."""
    preset: str = ""
    """With no `pretrained`: a fresh model from this preset (`openai-gpt`, `gpt2`, `gpt2-medium`, `gpt2-large`, `tiny`)."""
    config: dict = field(default_factory=dict)
    """GPTConfig fields: any of them for a fresh model; only dropouts for a pretrained one."""
    transfer_layers: int = -1
    """Pre-trained blocks to keep (the embeddings always are); later blocks start from fresh weights; -1 keeps all."""

    def __post_init__(self):
        if bool(self.pretrained) == bool(self.preset):
            raise ConfigError("model: give exactly one of `pretrained` (a hub name or folder) or `preset`")
        if not isinstance(self.transfer_layers, int) or self.transfer_layers < -1:
            raise ConfigError(f"model.transfer_layers must be -1 (all) or a number of blocks >= 0, "
                              f"got {self.transfer_layers!r}")
        if self.preset and self.transfer_layers != -1:
            raise ConfigError("model.transfer_layers needs model.pretrained: a preset has nothing to transfer")
        known = {f.name for f in fields(GPTConfig)}
        unknown = sorted(set(self.config) - known)
        if unknown:
            raise ConfigError(f"model.config: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if self.preset:
            GPTConfig.preset(self.preset, **self.config)
        elif set(self.config) - _DROPOUTS:
            raise ConfigError(f"model.config: {', '.join(sorted(set(self.config) - _DROPOUTS))} cannot change on a "
                              "pretrained model (only embd_pdrop, attn_pdrop, resid_pdrop)")

    @classmethod
    def from_string(cls, value: str) -> dict:
        return {"pretrained": value}

    def load(self, tokenizer, seed: int = 0):
        """The backbone this section names: released weights (with blocks past `transfer_layers` freshly
        initialised, seeded with `seed`), or a fresh model from the preset sized to `tokenizer`'s
        vocabulary (seeded with `seed`)."""
        from ..model.gpt import GPT

        if self.pretrained:
            model = GPT.from_pretrained(self.pretrained, **self.config)
            if self.transfer_layers > model.config.n_layer:
                raise ConfigError(f"model.transfer_layers is {self.transfer_layers} but {self.pretrained} has "
                                  f"{model.config.n_layer} blocks")
            if self.transfer_layers >= 0:
                model.reinitialize_blocks(self.transfer_layers, seed)
            return model
        config = GPTConfig.preset(self.preset, **{"vocab_size": tokenizer.vocab_size, **self.config})
        return GPT(config, seed=seed)


@dataclass(frozen=True)
class RunConfig:
    """A fine-tuning run: `gptft train CONFIG`."""

    model: ModelSection
    """The backbone to fine-tune."""
    task: Task
    """What to predict: the input format, labels, head, loss and metrics."""
    data: DataConfig
    """Where the labeled examples come from."""
    tokenizer: str = ""
    """A hub name or folder; default: model.pretrained."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The paper's fine-tuning recipe (Section 4.1) unless changed."""
    device: str = "cpu"
    """cpu, gpu or ascend."""
    mode: str = "graph"
    """graph (compiled, the default) or pynative (for debugging)."""
    output_dir: str = "runs/gptft"
    """Receives metrics.jsonl, checkpoints/, plots, predictions and the exported model."""

    def __post_init__(self):
        check_settings(self.device, self.mode, self.train.precision)
        if not self.tokenizer and not self.model.pretrained:
            raise ConfigError("tokenizer: required when the model is built from a preset")

    @property
    def tokenizer_source(self) -> str:
        return self.tokenizer or self.model.pretrained

    def eval_batch_size(self, world_size: int = 1) -> int:
        """Examples per evaluation batch: data.eval_batch_size, or twice the training micro-batch."""
        return self.data.eval_batch_size or 2 * self.train.micro_batch_size(world_size)


@dataclass(frozen=True)
class ZeroShotSection:
    """How the language model answers the task untrained (the GPT-1 paper's Section 5 heuristics)."""

    template: str = ""
    """The prompt, the task's fields in braces (`{text}`; `{premise}`, `{hypothesis}`; `{context}`); empty joins the fields with spaces."""
    verbalizers: dict = field(default_factory=dict)
    """Label -> the word or phrase whose log-probability after the prompt scores the label (leading space for GPT-2's tokenizer)."""
    answer_prefix: str = " "
    """Multiple choice: text between the prompt and each answer, whose tokens' mean log-probability scores it."""


@dataclass(frozen=True)
class ZeroShotConfig(RunConfig):
    """A zero-shot evaluation: `gptft zeroshot CONFIG`, a `gptft train` config plus a `zeroshot:` section.

    Of `train`, only `seed` is read (it carves validation from train when the data has none)."""

    zeroshot: ZeroShotSection = field(default_factory=ZeroShotSection)
    """The prompt and what is scored after it."""

    def __post_init__(self):
        super().__post_init__()
        task, shot = self.task, self.zeroshot
        if task.kind == "similarity" or (task.kind != "multiple_choice" and not task.labels):
            raise ConfigError(f"zeroshot: a {task.kind} task {'with no labels ' if not task.labels else ''}has no "
                              "labels or answers to score")
        if task.kind != "multiple_choice" and set(shot.verbalizers) != set(task.labels):
            missing = sorted(set(task.labels) - set(shot.verbalizers))
            extra = sorted(set(shot.verbalizers) - set(task.labels))
            raise ConfigError("zeroshot.verbalizers: give one word or phrase for every label"
                              + (f"; missing: {', '.join(missing)}" if missing else "")
                              + (f"; not a label: {', '.join(extra)}" if extra else ""))
        if not all(isinstance(v, str) and v for v in shot.verbalizers.values()):
            raise ConfigError("zeroshot.verbalizers: every verbalizer must be a non-empty string")
        names = {name for _, name, _, _ in string.Formatter().parse(shot.template) if name is not None}
        allowed = set(task.fields) - {"choices"}
        if names - allowed:
            raise ConfigError(f"zeroshot.template: {{{sorted(names - allowed)[0]}}} is not a field of a {task.kind} "
                              f"task (fields: {', '.join(sorted(allowed))})")


@dataclass(frozen=True)
class TokenizerTraining:
    """Train a byte-level BPE tokenizer on the pre-training text."""

    vocab_size: int = 8000
    """Tokens in the learned vocabulary, the end-of-text token included."""
    min_frequency: int = 2
    """A pair merges only if it occurs at least this often."""


@dataclass(frozen=True)
class PretrainConfig:
    """A pre-training run: `gptft pretrain CONFIG`."""

    model: ModelSection
    """The model to pre-train: a preset (from scratch) or released weights (to continue)."""
    data: TextData
    """The unlabeled text."""
    tokenizer: str = ""
    """An existing tokenizer (hub name or folder); default model.pretrained, unless `train_tokenizer`."""
    train_tokenizer: TokenizerTraining | None = None
    """Train a new byte-level BPE tokenizer on the data instead of loading one."""
    block_size: int = 0
    """Tokens per training block; 0 means the model's context length."""
    train: TrainConfig = PRETRAIN_RECIPE
    """The paper's pre-training recipe (Adam 2.5e-4, 2,000 warmup steps, cosine, batch 64) unless changed."""
    device: str = "cpu"
    """cpu, gpu or ascend."""
    mode: str = "graph"
    """graph (compiled, the default) or pynative (for debugging)."""
    output_dir: str = "runs/pretrain"
    """Receives metrics.jsonl, checkpoints/, plots and model/ (weights and tokenizer for `gptft train`)."""

    def __post_init__(self):
        check_settings(self.device, self.mode, self.train.precision)
        sources = bool(self.tokenizer) + (self.train_tokenizer is not None)
        if sources > 1:
            raise ConfigError("give `tokenizer` or `train_tokenizer`, not both")
        if not sources and not self.model.pretrained:
            raise ConfigError("a model built from a preset needs `tokenizer` or `train_tokenizer`")
        if self.block_size < 0:
            raise ConfigError(f"block_size must be >= 0, got {self.block_size}")
        if self.train.lora.rank:
            raise ConfigError("train.lora: pre-training trains every weight; adapters are for fine-tuning (gptft train)")


# The runs the reference shows: the IMDb fine-tune and a small pre-training from scratch.
EXAMPLES = {
    "train": (RunConfig, {
        "model": {"pretrained": "openai-gpt"},
        "task": {"kind": "classification", "labels": ["negative", "positive"], "truncation": "head_tail"},
        "data": {"dataset": "stanfordnlp/imdb", "test": "test", "strip_html": True},
        "output_dir": "runs/imdb"}),
    "zeroshot": (ZeroShotConfig, {
        "model": {"pretrained": "openai-gpt"},
        "task": {"kind": "classification", "labels": ["negative", "positive"]},
        "data": {"dataset": "stanfordnlp/sst2", "validation": "validation", "test": ""},
        "zeroshot": {"template": "{text} very", "verbalizers": {"negative": " negative", "positive": " positive"}},
        "output_dir": "runs/sst2-zeroshot"}),
    "pretrain": (PretrainConfig, {
        "model": {"preset": "gpt2", "config": {"n_layer": 6, "n_embd": 384, "n_head": 6, "block_size": 256}},
        "train_tokenizer": {"vocab_size": 16000},
        "data": {"files": ["reviews.txt"]},
        "output_dir": "runs/pretrain"}),
}


_COMMENT_COLUMN = 30  # longer lines push their comment further right


def field_docs(cls) -> dict[str, str]:
    """`{field: its docstring}` for a dataclass whose fields carry attribute docstrings."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _first_sentence(text: str) -> str:
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def _scalar(value) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


def _lines(config, indent: str) -> list[tuple[str, str]]:
    docs = field_docs(type(config))
    lines = []
    for spec in fields(config):
        if not spec.init:
            continue
        value, doc = getattr(config, spec.name), _first_sentence(docs.get(spec.name, ""))
        if dataclasses.is_dataclass(value):
            lines.append((f"{indent}{spec.name}:", doc))
            lines += _lines(value, indent + "  ")
        else:
            lines.append((f"{indent}{spec.name}: {_scalar(value)}", doc))
    return lines


def reference_yaml(command: str) -> str:
    """The example run of `command` (`train`, `zeroshot` or `pretrain`) as YAML: every key, its value and what it means."""
    cls, values = EXAMPLES[command]
    from .configfile import load_config

    lines = _lines(load_config(cls, values=values), "")
    width = min(max(len(text) for text, _ in lines), _COMMENT_COLUMN)
    return "".join(f"{text:{width}s}  # {doc}\n" if doc else f"{text}\n" for text, doc in lines)
