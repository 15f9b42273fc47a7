"""The GPT backbone: its configuration, layers, the Hugging Face folder format, and the tokenizers.

Nothing in this package knows about tasks, training or YAML.
"""

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "GPTConfig": "config",
    "PRESETS": "config",
    "GPT": "gpt",
    "Tokenizer": "tokenizer",
    "train_bpe": "tokenizer",
})
