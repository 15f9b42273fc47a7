"""Data: loading splits through `datasets` (hub names or local files), checking rows, tokenizing with a
disk cache, length-bucketed batches, and unlabeled text cut into blocks for pre-training.
"""

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DataConfig": "config",
    "TextData": "config",
    "Examples": "loading",
    "load_split": "loading",
    "read_examples": "loading",
    "load_task_splits": "loading",
    "split_off_validation": "loading",
    "Encoded": "encoding",
    "encode": "encoding",
    "TrainBatches": "batches",
    "eval_batches": "batches",
    "default_buckets": "batches",
    "read_documents": "text",
    "make_blocks": "text",
    "block_batches": "text",
})
