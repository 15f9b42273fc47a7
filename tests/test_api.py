"""The public API: `from gptft import ...` names stay stable; `import gptft` does not import MindSpore."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import gptft

PUBLIC = {
    "GPT": "gptft.model.gpt", "GPTConfig": "gptft.model.config", "Tokenizer": "gptft.model.tokenizer",
    "Dropout": "gptft.model.layers", "Task": "gptft.tasks.task", "TaskModel": "gptft.tasks.task_model",
    "TaskLoss": "gptft.tasks.losses", "register_head": "gptft.tasks.heads", "TrainConfig": "gptft.training.config",
    "RunConfig": "gptft.commands.schema", "PretrainConfig": "gptft.commands.schema",
    "load_config": "gptft.commands.configfile", "train": "gptft.commands.finetune",
    "pretrain": "gptft.commands.pretrain", "GptftError": "gptft.errors", "ConfigError": "gptft.errors",
    "DataError": "gptft.errors", "ModelFileError": "gptft.errors",
    "TrainingInterrupted": "gptft.training.interrupt",
}


def test_every_public_name_is_the_object_its_module_defines():
    assert sorted(gptft.__all__) == sorted([*PUBLIC, "__version__"])
    assert dir(gptft) == sorted(PUBLIC)
    for name, module in PUBLIC.items():
        assert getattr(gptft, name) is getattr(importlib.import_module(module), name), name
    for error in ("ConfigError", "DataError", "ModelFileError"):
        assert issubclass(getattr(gptft, error), gptft.GptftError)
    with pytest.raises(AttributeError, match="has no attribute 'finetune'"):
        gptft.finetune  # noqa: B018 (a name that is not public is an error, not a None)


def test_version_is_the_packaged_one():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert gptft.__version__ == pyproject["project"]["version"]


def test_import_gptft_does_not_import_mindspore():
    """The CLI sets MindSpore's log level, and `gptft doctor` runs, before MindSpore is imported."""
    code = "import sys, gptft, gptft.model, gptft.tasks, gptft.training, gptft.data; print('mindspore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lower_layers_never_import_higher_ones():
    """model < tasks < training < data < commands: each package imports only from those before it."""
    order = ["errors", "_lazy", "model", "tasks", "training", "data", "commands"]
    source = Path(gptft.__file__).parent
    for path in source.rglob("*.py"):
        parts = path.relative_to(source).parts
        if len(parts) == 1:
            continue  # gptft/__init__.py and __main__.py sit above every layer
        layer = order.index(parts[0])
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("from .."):
                target = line.split()[1].lstrip(".").split(".")[0]
                assert order.index(target) <= layer, f"{path.relative_to(source)} imports {target}: {line}"
