"""gptft: fine-tune GPT models on MindSpore with the GPT-1 recipe (Radford et al. 2018).

The public API is what `__all__` lists; everything else may change between releases. The packages name
the layers, each importing only from those before it: `model` (the GPT, its Hugging Face format and
tokenizers), `tasks` (formats, heads, losses, metrics), `training` (optimizer, compiled step, trainer,
checkpoints), `data` (loading, caching, batches) and `commands` (the YAML schema, the fine-tune and
pre-train recipes, the command line).

Names load on first use, so `import gptft` does not import MindSpore.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, _names = lazy_exports(__name__, {
    "GPT": "model.gpt",
    "GPTConfig": "model.config",
    "Tokenizer": "model.tokenizer",
    "Dropout": "model.layers",
    "Task": "tasks.task",
    "TaskModel": "tasks.task_model",
    "TaskLoss": "tasks.losses",
    "register_head": "tasks.heads",
    "TrainConfig": "training.config",
    "RunConfig": "commands.schema",
    "PretrainConfig": "commands.schema",
    "load_config": "commands.configfile",
    "train": "commands.finetune",
    "pretrain": "commands.pretrain",
    "GptftError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "ModelFileError": "errors",
    "TrainingInterrupted": "training.interrupt",
})
__all__ = _names + ["__version__"]
