"""The README's YAML schema is a config that loads, and it lists every setting there is."""

import dataclasses
import re
from pathlib import Path

import yaml

from gptft.config import TrainConfig
from gptft.runconfig import DataConfig, ModelSection, RunConfig, load
from gptft.tasks import Task

README = Path(__file__).resolve().parents[1] / "README.md"


def schema_block() -> str:
    text = README.read_text(encoding="utf-8")
    return re.search(r"### YAML schema\s+```yaml\n(.*?)```", text, re.S).group(1)


def test_the_readme_schema_loads_as_a_run_config(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(schema_block(), encoding="utf-8")
    config = load(RunConfig, path)
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
