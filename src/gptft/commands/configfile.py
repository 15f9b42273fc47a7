"""YAML files to frozen config dataclasses and back, with every key and type checked.

Load order: the defaults, then the YAML file (or a dict), then `--section.key=value` overrides. A section
given in YAML is laid over that field's own default instance, so a section whose defaults differ from its
class's (pre-training's `train:` recipe) keeps them for every key the YAML leaves out. An unknown key, a
wrong type or an invalid value is a `ConfigError` naming the file and the dotted key.

    >>> config = load_config(RunConfig, "configs/imdb.yaml", ["train.epochs=1"])
    >>> save(config, "runs/imdb/config.yaml")        # the resolved configuration, every key
"""

import dataclasses
import types
import typing
from dataclasses import fields
from pathlib import Path

import yaml

from ..errors import ConfigError


def _type_name(kind) -> str:
    return getattr(kind, "__name__", str(kind))


def _convert(value, kind, where: str, default=None):
    """`value` as an instance of the annotated type `kind`, or a ConfigError naming `where`.

    `default` is the field's default value: a dataclass section is laid over it when it is an instance.
    """
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
                return _convert(value, option, where, default)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(kind):
        return build(kind, value, where, base=default if isinstance(default, kind) else None)
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


def _default_of(spec: dataclasses.Field):
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return None


def build(cls, values, where: str, base=None):
    """An instance of dataclass `cls` from a mapping, checking unknown keys, types and values.

    Keys the mapping leaves out come from `base` when given (an instance of `cls`), else from the
    field defaults. A string where the class declares `from_string` is read through it.
    """
    if values is None:
        values = {}
    if isinstance(values, str) and hasattr(cls, "from_string"):
        values = cls.from_string(values)
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(cls)
    specs = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(specs)}")
    kwargs = {}
    for key, value in values.items():
        default = getattr(base, key) if base is not None else _default_of(specs[key])
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}" if where else key, default)
    if base is None:
        required = [name for name, spec in specs.items() if spec.default is dataclasses.MISSING
                    and spec.default_factory is dataclasses.MISSING and name not in kwargs]
        if required:
            raise ConfigError(f"{where or 'config'}: missing required key(s) {', '.join(required)}")
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
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
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]  # PyYAML's text spans lines
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({problem}); quote a value that "
                          "starts with {, [ or a quote") from None
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


def load_config(cls, path=None, overrides: typing.Sequence[str] = (), values: dict | None = None):
    """Build `cls` (`RunConfig`, `PretrainConfig`) from defaults, a YAML file (or `values`), then dotted overrides."""
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
