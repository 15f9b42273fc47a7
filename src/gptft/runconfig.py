"""The YAML schema of a run, loaded into frozen dataclasses with every key and type checked.

Load order: the dataclass defaults, then the YAML file, then `--section.key=value` overrides. An unknown
key, a wrong type or an invalid value is a `ConfigError` naming the file and the dotted key. The resolved
configuration is written into the output folder, so a run can always be repeated exactly.

    model:        {pretrained: openai-gpt}        # or {preset: tiny, config: {n_layer: 4}}
    tokenizer:    openai-gpt                       # default: model.pretrained
    task:         {kind: classification, labels: [negative, positive], max_length: 512}
    data:         {dataset: stanfordnlp/imdb, test: test, columns: {text: text, label: label}}
    train:        {lr: 6.25e-5, epochs: 3, lm_coef: 0.5}
    device:       cpu
    output_dir:   runs/imdb
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .config import GPTConfig, TrainConfig
from .errors import ConfigError
from .tasks import Task


@dataclass(frozen=True)
class ModelSection:
    """Which backbone to start from."""

    pretrained: str = ""
    """A hub name (`openai-gpt`, `gpt2`) or a folder (Hugging Face layout, or a gptft pretrain output)."""
    preset: str = ""
    """With no `pretrained`: a fresh model from this preset (`openai-gpt`, `gpt2`, `tiny`)."""
    config: dict = field(default_factory=dict)
    """GPTConfig fields: any of them for a fresh model; only dropouts for a pretrained one."""

    def __post_init__(self):
        if bool(self.pretrained) == bool(self.preset):
            raise ConfigError("model: give exactly one of `pretrained` (a hub name or folder) or `preset`")
        if self.preset:
            GPTConfig.preset(self.preset, **_checked_model_fields(self.config))
        else:
            shaped = sorted(set(self.config) - {"embd_pdrop", "attn_pdrop", "resid_pdrop"})
            if shaped:
                raise ConfigError(f"model.config: {', '.join(shaped)} cannot change on a pretrained model "
                                  "(only embd_pdrop, attn_pdrop, resid_pdrop)")
            _checked_model_fields(self.config)


def _checked_model_fields(values: dict) -> dict:
    known = {f.name for f in fields(GPTConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"model.config: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return values


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how their columns map to the task's fields."""

    dataset: str = ""
    """A hub dataset name (`stanfordnlp/imdb`, `glue`), or a local folder (csv/json/jsonl/parquet files, or
    the `aclImdb` layout); empty when each split names its own file."""
    subset: str = ""
    """The hub dataset's configuration (`sst2` of `glue`)."""
    train: str = "train"
    """The training split: a split name of `dataset`, or a local file or folder."""
    validation: str = ""
    """The validation split; empty carves `validation_fraction` of train (seeded) instead."""
    test: str = ""
    """The test split, used only for the final report; empty for none."""
    validation_fraction: float = 0.1
    """Share of train held out for validation when no validation split is given."""
    columns: dict = field(default_factory=dict)
    """Task field -> column name (or a list of columns: joined with spaces for text, one per answer for
    `choices`). Fields not listed are read from columns of the same name."""
    label_values: tuple = ()
    """The dataset's label values in task-label order, when they are neither 0..n-1 nor the label names."""
    skip_labels: tuple = ()
    """Rows with these label values are dropped (SNLI marks examples without a gold label -1)."""
    id_column: str = ""
    """A column of example ids for the predictions file; default the row number."""
    strip_html: bool = False
    """Replace HTML line breaks (`<br />`) with spaces; IMDb reviews are full of them."""
    buckets: tuple = ()
    """Batch lengths; each batch is padded to the smallest that fits. Default: a geometric set up to
    task.max_length (one compiled step per length, or one for all with train.dynamic_length)."""
    eval_batch_size: int = 0
    """Examples per evaluation batch; 0 means twice the training micro-batch."""
    limit: int = 0
    """Use only the first N examples of each split (0: all); for quick trials."""
    cache_dir: str = ""
    """Where tokenized examples are cached; default ~/.cache/gptft (or $GPTFT_CACHE)."""

    def __post_init__(self):
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not self.validation and self.validation_fraction == 0:
            raise ConfigError("data: give a validation split or a validation_fraction above 0 "
                              "(never evaluate on the training split)")
        for name in ("eval_batch_size", "limit"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        if any(not isinstance(b, int) or b < 4 for b in self.buckets) or list(self.buckets) != sorted(set(self.buckets)):
            raise ConfigError(f"data.buckets must be increasing integers of at least 4, got {list(self.buckets)}")


@dataclass(frozen=True)
class RunConfig:
    """A fine-tuning run: `gptft train CONFIG`."""

    model: ModelSection
    task: Task
    data: DataConfig
    tokenizer: str = ""
    """A hub name or folder; default: model.pretrained."""
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str = "cpu"
    """cpu, gpu or ascend."""
    mode: str = "graph"
    """graph (compiled, the default) or pynative (for debugging)."""
    output_dir: str = "runs/gptft"
    """Receives metrics.jsonl, checkpoints/, plots, predictions and the exported model."""

    def __post_init__(self):
        from .device import check_settings

        check_settings(self.device, self.mode, self.train.precision)
        if not self.tokenizer and not self.model.pretrained:
            raise ConfigError("tokenizer: required when the model is built from a preset")

    @property
    def tokenizer_source(self) -> str:
        return self.tokenizer or self.model.pretrained

    def eval_batch_size(self, world_size: int = 1) -> int:
        """Examples per evaluation batch: data.eval_batch_size, or twice the training micro-batch."""
        return self.data.eval_batch_size or 2 * self.train.micro_batch_size(world_size)


def _type_name(kind) -> str:
    return getattr(kind, "__name__", str(kind))


def _convert(value, kind, where: str):
    """`value` as an instance of the annotated type `kind`, or a ConfigError naming `where`."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(kind):
        return build(kind, value, where)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads 3e-5 (no dot) as a string; take it as the number it plainly is.
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif kind is tuple or origin is tuple:
        if isinstance(value, (list, tuple)):
            args = typing.get_args(kind)
            if args and args[-1] is Ellipsis:
                return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if args:
                if len(args) != len(value):
                    raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
                return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            return tuple(value)
    else:
        raise TypeError(f"no YAML conversion for {kind}")
    raise ConfigError(f"{where}: expected {_type_name(origin or kind)}, got {type(value).__name__} {value!r}")


def build(cls, values, where: str):
    """An instance of dataclass `cls` from a mapping, checking unknown keys, types and values."""
    if values is None:
        values = {}
    if isinstance(values, str) and cls is ModelSection:
        values = {"pretrained": values}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
    kwargs = {key: _convert(value, hints[key], f"{where}.{key}" if where else key) for key, value in values.items()}
    required = [f.name for f in fields(cls) if f.init and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in kwargs]
    if required:
        raise ConfigError(f"{where or 'config'}: missing required key(s) {', '.join(required)}")
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}" if where and not str(error).startswith(where) else str(error)) from None


def parse_override(text: str) -> tuple[list[str], object]:
    """`section.key=value` -> (["section", "key"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip().removeprefix("--")
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: {key!r} is not a dotted key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from None
    return key.split("."), value


def read_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: YAML syntax error{where}: {getattr(error, 'problem', None) or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error})") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(values).__name__}")
    return values


def load(cls, path=None, overrides: typing.Sequence[str] = (), values: dict | None = None):
    """Build `cls` (e.g. `RunConfig`) from defaults, a YAML file (or `values`), then dotted overrides."""
    values = dict(values or {}) if path is None else read_yaml(path)
    for text in overrides:
        keys, value = parse_override(text)
        target = values
        for part in keys[:-1]:
            if not isinstance(target.get(part, {}), dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
            target = target.setdefault(part, {})
        target[keys[-1]] = value
    try:
        return build(cls, values, "")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}" if path else str(error)) from None


def to_dict(config) -> dict:
    """A plain (YAML-writable) dict of a config dataclass."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value) if f.init}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(config)


def save(config, path) -> None:
    """Write the resolved configuration as YAML."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True))
