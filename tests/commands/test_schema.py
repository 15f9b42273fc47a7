"""The run schemas: sections keep their own defaults, every field is documented, the reference renders."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from gptft import PretrainConfig, RunConfig, load_config
from gptft.commands.schema import EXAMPLES, PRETRAIN_RECIPE, field_docs, reference_yaml
from gptft.training.config import TrainConfig

DEMO_PRETRAIN = Path(__file__).resolve().parents[2] / "src" / "gptft" / "demo_data" / "pretrain.yaml"
PRETRAIN_BASE = {"model": {"preset": "tiny"}, "data": {"files": ["x.txt"]}, "train_tokenizer": {}}


def sections_with_their_own_defaults():
    """(config class, field) for every section whose default instance differs from its class's defaults."""
    found = []
    for cls in (RunConfig, PretrainConfig):
        for spec in dataclasses.fields(cls):
            if spec.default is not dataclasses.MISSING and dataclasses.is_dataclass(spec.default):
                if spec.default != type(spec.default)():
                    found.append((cls, spec.name))
    return found


def test_pre_training_is_the_section_with_its_own_defaults():
    assert sections_with_their_own_defaults() == [(PretrainConfig, "train")]


@pytest.mark.parametrize("cls, name", sections_with_their_own_defaults())
def test_a_one_key_section_keeps_every_other_default_of_its_own(cls, name):
    default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
    base = PRETRAIN_BASE if cls is PretrainConfig else dict(EXAMPLES["train"][1])
    key = next(f.name for f in dataclasses.fields(default) if type(getattr(default, f.name)) is int)
    changed = {key: getattr(default, key) + 1}  # one key of the section, whichever integer comes first
    config = load_config(cls, values={**base, name: changed})
    assert getattr(config, name) == dataclasses.replace(default, **changed)


def test_a_pre_training_config_that_sets_only_the_epochs_keeps_the_papers_recipe():
    config = load_config(PretrainConfig, values={**PRETRAIN_BASE, "train": {"epochs": 5}})
    assert config.train == dataclasses.replace(PRETRAIN_RECIPE, epochs=5)
    assert (config.train.lr, config.train.schedule, config.train.warmup, config.train.batch_size) == (
        2.5e-4, "cosine", 2000, 64)
    overridden = load_config(PretrainConfig, values=PRETRAIN_BASE, overrides=["train.lr=1e-3"])
    assert overridden.train == dataclasses.replace(PRETRAIN_RECIPE, lr=1e-3)


def test_fine_tuning_keeps_the_fine_tuning_recipe():
    config = load_config(RunConfig, values={**EXAMPLES["train"][1], "train": {"epochs": 5}})
    assert config.train == TrainConfig(epochs=5)


def test_the_demos_pre_training_config_is_its_keys_over_the_recipe():
    config = load_config(PretrainConfig, DEMO_PRETRAIN, ["data.files=[x.txt]"])
    given = yaml.safe_load(DEMO_PRETRAIN.read_text())["train"]
    assert config.train == dataclasses.replace(PRETRAIN_RECIPE, **given)


@pytest.mark.parametrize("cls", [RunConfig, PretrainConfig])
def test_every_setting_has_a_docstring(cls):
    def undocumented(klass, where):
        docs = field_docs(klass)
        missing = [f"{where}{f.name}" for f in dataclasses.fields(klass) if f.init and not docs.get(f.name)]
        for f in dataclasses.fields(klass):
            inner = klass.__dataclass_fields__[f.name].type
            kinds = [k for k in getattr(inner, "__args__", (inner,)) if dataclasses.is_dataclass(k)]
            for kind in kinds:
                missing += undocumented(kind, f"{where}{f.name}.")
        return missing

    assert undocumented(cls, "") == []


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_the_reference_loads_back_as_its_example_and_comments_every_key(command, tmp_path):
    cls, values = EXAMPLES[command]
    text = reference_yaml(command)
    path = tmp_path / "reference.yaml"
    path.write_text(text)
    assert load_config(cls, path) == load_config(cls, values=values)
    assert all("  # " in line for line in text.splitlines())


def test_transfer_layers_keeps_that_many_pretrained_blocks(tmp_path):
    from gptft import GPT, GPTConfig, Tokenizer
    from gptft.commands.schema import ModelSection
    from gptft.errors import ConfigError
    from gptft.model.layers import named_parameters

    GPT(GPTConfig.preset("tiny", vocab_size=99), seed=3).save_pretrained(tmp_path)
    pretrained = {n: p.asnumpy() for n, p in named_parameters(GPT.from_pretrained(tmp_path), weights_only=True).items()}
    for keep in (0, 1, 2, -1):
        model = ModelSection(pretrained=str(tmp_path), transfer_layers=keep).load(Tokenizer, seed=5)
        same = {n for n, p in named_parameters(model, weights_only=True).items()
                if len(p.shape) == 2 and (p.asnumpy() == pretrained[n]).all()}  # matrices: norms start equal
        kept_blocks = 2 if keep == -1 else keep
        assert {n.split(".")[1] for n in same if n.startswith("h.")} == {str(i) for i in range(kept_blocks)}
        assert {"wte.weight", "wpe.weight"} <= same
    with pytest.raises(ConfigError, match=f"model.transfer_layers is 3 but {tmp_path} has 2 blocks"):
        ModelSection(pretrained=str(tmp_path), transfer_layers=3).load(Tokenizer)
    with pytest.raises(ConfigError, match="needs model.pretrained"):
        ModelSection(preset="tiny", transfer_layers=1)
    with pytest.raises(ConfigError, match="-1 \\(all\\) or a number of blocks"):
        ModelSection(pretrained="x", transfer_layers=-2)


def test_pre_training_refuses_lora():
    from gptft import ConfigError

    with pytest.raises(ConfigError, match="train.lora: pre-training trains every weight"):
        load_config(PretrainConfig, values={**PRETRAIN_BASE, "train": {"lora": {"rank": 4}}})
