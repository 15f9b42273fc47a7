import dataclasses

import pytest

from gptft import RunConfig, load_config
from gptft.commands.configfile import build, parse_override, read_yaml, save
from gptft.errors import ConfigError

BASE = """
model: {pretrained: openai-gpt}
task: {kind: classification, labels: [negative, positive], max_length: 128}
data: {dataset: stanfordnlp/imdb, test: test}
train: {lr: 6.25e-5, epochs: 2}
output_dir: runs/x
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(BASE)
    return path


def test_defaults_yaml_then_overrides(config_file):
    config = load_config(RunConfig, config_file, ["train.lr=3e-5", "task.max_length=64", "data.buckets=[32, 64]"])
    assert config.train.lr == 3e-5 and config.train.epochs == 2 and config.train.batch_size == 32
    assert config.task.max_length == 64 and config.task.labels == ("negative", "positive")
    assert config.data.buckets == (32, 64) and config.tokenizer_source == "openai-gpt"


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", r"train: unknown key\(s\) lrr"),
    ("train.lr=abc", "train.lr: expected float, got str 'abc'"),
    ("train.lr=-1", "train.lr must be positive"),
    ("train.lm_coef=-0.5", "train.lm_coef must be >= 0"),
    ("train.epochs=2.5", "train.epochs: expected int"),
    ("task.kind=ranking", "unknown task kind 'ranking'"),
    ("task.head=unknown_head", None),
    ("device=tpu", "unknown device 'tpu'"),
    ("train.precision=bfloat16", "not available on CPU"),
    ("model.preset=tiny", "exactly one of `pretrained`"),
    ("model.config={n_layer: 2}", "cannot change on a pretrained model"),
    ("data.validation_fraction=0", "never evaluate on the training split"),
    ("output_dir=[1, 2]", "output_dir: expected str"),
])
def test_bad_values_name_the_key(config_file, override, message):
    if message is None:  # an unknown head is caught when the head is built, with the registered names
        from gptft.tasks.heads import head_factory

        config = load_config(RunConfig, config_file, [override])
        with pytest.raises(ConfigError, match="unknown head 'unknown_head'"):
            head_factory(config.task.head_name)
        return
    with pytest.raises(ConfigError, match=message) as error:
        load_config(RunConfig, config_file, [override])
    assert str(config_file) in str(error.value)


def test_missing_required_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {pretrained: gpt2}\ntask: {kind: classification}\n")
    with pytest.raises(ConfigError, match=r"missing required key\(s\) data"):
        load_config(RunConfig, path)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: {pretrained: gpt2}\ntask: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: YAML syntax error at line \d+"):
        read_yaml(path)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        read_yaml(tmp_path / "list.yaml")


def test_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        read_yaml(path)


def test_override_syntax():
    assert parse_override("train.lr=1e-4") == (["train", "lr"], "1e-4")
    assert parse_override("--data.columns={text: sentence}") == (["data", "columns"], {"text": "sentence"})
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.lr")


def test_saved_config_loads_back_equal(config_file, tmp_path):
    config = load_config(RunConfig, config_file, ["train.betas=[0.9, 0.98]"])
    save(config, tmp_path / "resolved.yaml")
    assert load_config(RunConfig, tmp_path / "resolved.yaml") == config


@dataclasses.dataclass(frozen=True)
class Inner:
    a: int = 1
    b: str = "class default"


@dataclasses.dataclass(frozen=True)
class Outer:
    plain: Inner = dataclasses.field(default_factory=Inner)
    own: Inner = Inner(a=5, b="own default")
    optional: Inner | None = None


def test_a_section_is_laid_over_its_fields_own_default_instance():
    config = build(Outer, {"plain": {"a": 2}, "own": {"a": 7}, "optional": {"a": 3}}, "")
    assert config.plain == Inner(a=2, b="class default")
    assert config.own == Inner(a=7, b="own default")  # not Inner(a=7): the field's default, not the class's
    assert config.optional == Inner(a=3, b="class default")  # no default instance: the class's defaults
    assert build(Outer, {"own": {}}, "").own == Inner(a=5, b="own default")
    assert build(Outer, {}, "") == Outer()
    with pytest.raises(ConfigError, match=r"own: unknown key\(s\) c"):
        build(Outer, {"own": {"c": 1}}, "")
