"""Training, knowing nothing about GPT or tasks: the recipe's config, AdamW and its schedules, the
compiled step, the loop with evaluation, checkpoints and exact resume, the run log, device placement.
"""

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "TrainConfig": "config",
    "AdamW": "optim",
    "TrainStep": "step",
    "Trainer": "trainer",
    "ListSource": "trainer",
    "Progress": "trainer",
    "Placement": "device",
    "TrainingInterrupted": "interrupt",
})
