"""Tasks (GPT-1 paper, Figure 1): the input formats, `Task`, heads and their registry, the task model,
the objective (task loss + λ · LM loss), metrics and evaluation.

`formats` is pure NumPy; the rest builds on `gptft.model`.
"""

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "Batch": "formats",
    "TaskTokens": "formats",
    "Task": "task",
    "HEADS": "heads",
    "ClassificationHead": "heads",
    "MultipleChoiceHead": "heads",
    "RegressionHead": "heads",
    "SimilarityHead": "heads",
    "register_head": "heads",
    "TaskModel": "task_model",
    "TaskLoss": "losses",
    "LanguageModelLoss": "losses",
    "evaluate": "evaluation",
})
