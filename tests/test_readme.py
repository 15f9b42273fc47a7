"""The README's YAML schemas are generated from the field docstrings, load, and list every setting there is."""

import dataclasses
import re
from pathlib import Path

import yaml

from gptft import PretrainConfig, RunConfig, load_config
from gptft.commands.schema import ModelSection, reference_yaml
from gptft.data.config import DataConfig
from gptft.tasks import Task
from gptft.training.config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def yaml_block(after: str) -> str:
    """The first ```yaml block after the line `after` in the README."""
    text = README.read_text(encoding="utf-8")
    return re.search(re.escape(after) + r".*?```yaml\n(.*?)```", text, re.S).group(1)


def schema_block() -> str:
    return yaml_block("### YAML schema")


def test_the_readme_schemas_are_what_gptft_schema_prints():
    assert schema_block() == reference_yaml("train"), "regenerate with: gptft schema train"
    assert yaml_block("### Pre-training schema") == reference_yaml("pretrain"), "regenerate: gptft schema pretrain"


def test_the_readme_pretraining_example_keeps_the_papers_pre_training_recipe(tmp_path):
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml_block("## Pre-training"), encoding="utf-8")
    config = load_config(PretrainConfig, path)
    train = config.train
    assert (train.lr, train.schedule, train.warmup, train.batch_size) == (2.5e-4, "cosine", 2000, 64)


def test_the_readme_schema_loads_as_a_run_config(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(schema_block(), encoding="utf-8")
    config = load_config(RunConfig, path)
    assert config.train.lm_coef == 0.5 and config.task.max_length == 512 and config.train.dynamic_length is False


def test_the_readme_schema_names_every_setting():
    values = yaml.safe_load(schema_block())
    sections = {"model": ModelSection, "task": Task, "data": DataConfig, "train": TrainConfig}
    for name, cls in sections.items():
        settable = {f.name for f in dataclasses.fields(cls) if f.init}
        missing = settable - set(values[name]) - {"preset", "config"}  # the model's alternatives are comments
        assert not missing, f"README schema, section {name}: {sorted(missing)} not shown"
    top = {f.name for f in dataclasses.fields(RunConfig)} - set(sections)
    assert top <= set(values), sorted(top - set(values))
