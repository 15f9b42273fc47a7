"""gptft: fine-tune GPT models on MindSpore with the GPT-1 recipe (Radford et al. 2018).

The public API is what `__all__` lists; everything else may change between releases.

Names load on first use (PEP 562), so `import gptft` does not import MindSpore: the command line can
set MindSpore's log level first, and `gptft doctor` still runs where MindSpore itself fails to import.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "GPT": "model",
    "GPTConfig": "config",
    "TrainConfig": "config",
    "Tokenizer": "tokenizer",
    "Task": "tasks",
    "TaskModel": "task_model",
    "TaskLoss": "losses",
    "register_head": "heads",
    "RunConfig": "runconfig",
    "train": "run",
    "pretrain": "pretrain",
    "Dropout": "layers",
    "GptftError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "ModelFileError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gptft' has no attribute {name!r}")


def __dir__():
    return __all__
