"""The first GPT stage: language modelling on unlabeled text (Radford et al. 2018, Section 3.1).

Documents are tokenized, joined with an end-of-text token where the vocabulary has one, and cut into
contiguous blocks of the context length. The default schedule is the paper's: linear warmup, then cosine
annealing. The output folder's `model/` (weights in the Hugging Face layout plus `tokenizer.json`) is what
`gptft train` loads as `model: {pretrained: .../model}`. Optionally a byte-level BPE tokenizer is trained
on the same text first, with the `tokenizers` library.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mindspore import nn, ops

from . import device as device_module
from .config import TrainConfig
from .errors import ConfigError, DataError
from .layers import seed_dropout
from .losses import cross_entropy
from .model import GPT
from .optim import AdamW
from .runconfig import ModelSection, save
from .tokenizer import Tokenizer, byte_level_backend
from .train_step import TrainStep
from .trainer import ListSource, Trainer

END_OF_TEXT = "<|endoftext|>"

# The paper's pre-training recipe (Section 4.1): Adam at 2.5e-4, 2,000 warmup steps, cosine annealing.
PRETRAIN_DEFAULTS = dict(lr=2.5e-4, schedule="cosine", warmup=2000, batch_size=64, lm_coef=1.0, epochs=10)


@dataclass(frozen=True)
class TextData:
    """Unlabeled text: files (one document per line, or `whole_files`), or a column of a dataset split."""

    files: tuple[str, ...] = ()
    """Local text files (.txt, optionally .gz)."""
    whole_files: bool = False
    """Treat each file as one document instead of one document per line."""
    dataset: str = ""
    """A hub dataset or local csv/json/parquet file, read through `datasets`."""
    subset: str = ""
    split: str = "train"
    column: str = "text"
    validation_fraction: float = 0.05
    """Share of the blocks held out to measure validation loss."""
    limit: int = 0
    """Use only the first N documents (0: all)."""

    def __post_init__(self):
        if bool(self.files) == bool(self.dataset):
            raise ConfigError("data: give either `files` or `dataset`")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction must be in (0, 1), got {self.validation_fraction}")


@dataclass(frozen=True)
class TokenizerTraining:
    """Train a byte-level BPE tokenizer on the pre-training text."""

    vocab_size: int = 8000
    min_frequency: int = 2


@dataclass(frozen=True)
class PretrainConfig:
    """A pre-training run: `gptft pretrain CONFIG`."""

    model: ModelSection
    data: TextData
    tokenizer: str = ""
    """An existing tokenizer (hub name or folder); default model.pretrained, unless `train_tokenizer`."""
    train_tokenizer: TokenizerTraining | None = None
    """Train a new byte-level BPE tokenizer on the data instead of loading one."""
    block_size: int = 0
    """Tokens per training block; 0 means the model's context length."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**PRETRAIN_DEFAULTS))
    device: str = "cpu"
    mode: str = "graph"
    output_dir: str = "runs/pretrain"

    def __post_init__(self):
        from .device import check_settings

        check_settings(self.device, self.mode, self.train.precision)
        sources = bool(self.tokenizer) + (self.train_tokenizer is not None)
        if sources > 1:
            raise ConfigError("give `tokenizer` or `train_tokenizer`, not both")
        if not sources and not self.model.pretrained:
            raise ConfigError("a model built from a preset needs `tokenizer` or `train_tokenizer`")
        if self.block_size < 0:
            raise ConfigError(f"block_size must be >= 0, got {self.block_size}")


def read_documents(config: TextData) -> list[str]:
    """The documents of the configured text source, empty ones dropped."""
    documents = []
    if config.files:
        import gzip

        for name in config.files:
            path = Path(name).expanduser()
            if not path.is_file():
                raise DataError(f"data.files: {path} does not exist")
            opener = gzip.open if path.suffix == ".gz" else open
            try:
                with opener(path, "rt", encoding="utf-8") as handle:
                    text = handle.read()
            except UnicodeDecodeError as error:
                raise DataError(f"{path}: not UTF-8 text (byte {error.start})") from None
            documents += [text] if config.whole_files else text.splitlines()
    else:
        from .data import load_split
        from .runconfig import DataConfig

        dataset = load_split(DataConfig(dataset=config.dataset, subset=config.subset), config.split)
        if config.column not in dataset.column_names:
            raise DataError(f"{config.dataset}: column {config.column!r} not found; columns are {dataset.column_names}")
        documents = [t for t in dataset[config.column] if isinstance(t, str)]
    documents = [d for d in documents if d.strip()]
    if config.limit:
        documents = documents[:config.limit]
    if not documents:
        raise DataError("data: the pre-training text is empty")
    return documents


def train_bpe(documents: list[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on `documents`, with an end-of-text token."""
    from tokenizers import pre_tokenizers, trainers

    backend = byte_level_backend({}, [])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(documents, trainer)
    return Tokenizer(backend)


def make_blocks(documents: list[str], tokenizer: Tokenizer, block_size: int) -> np.ndarray:
    """Contiguous `(N, block_size)` blocks of the token stream (documents joined by end-of-text if known)."""
    separator = tokenizer.backend.token_to_id(END_OF_TEXT)
    stream = []
    for ids in tokenizer.encode_batch(documents):
        stream += ids
        if separator is not None:
            stream.append(separator)
    count = len(stream) // block_size
    if count < 2:
        raise DataError(f"the text gives {len(stream)} tokens, fewer than two blocks of {block_size}")
    return np.asarray(stream[:count * block_size], np.int32).reshape(count, block_size)


class LMLoss(nn.Cell):
    """Next-token cross-entropy over whole blocks: `(ids) -> (loss, 0, loss)` in the trainer's layout."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def construct(self, ids):
        logits = self.model.lm_logits(self.model(ids[:, :-1]))
        loss = cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        return loss, ops.zeros((), loss.dtype), loss


def pretrain(config: PretrainConfig, resume: bool = False) -> dict:
    """Pre-train as `config` says. Returns the trainer state and the exported model folder."""
    from .run import _check_output_dir, load_backbone

    output_dir = Path(config.output_dir)
    _check_output_dir(output_dir, resume)
    placement = device_module.setup(config.device, config.mode, config.train.precision)
    documents = read_documents(config.data)
    tokenizer_dir = output_dir / "model"
    if config.train_tokenizer is not None:
        if resume and (tokenizer_dir / "tokenizer.json").is_file():
            tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
        else:
            tokenizer = train_bpe(documents, config.train_tokenizer.vocab_size, config.train_tokenizer.min_frequency)
    else:
        tokenizer = Tokenizer.from_pretrained(config.tokenizer or config.model.pretrained)
    model = load_backbone(config.model, tokenizer, config.train.seed)
    model.resize_token_embeddings(tokenizer.vocab_size, seed=config.train.seed)
    block_size = config.block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise ConfigError(f"block_size {block_size} exceeds the model's {model.config.block_size} positions")
    blocks = make_blocks(documents, tokenizer, block_size)
    order = np.random.default_rng([config.train.seed, 11]).permutation(len(blocks))
    held_out = max(1, int(len(blocks) * config.data.validation_fraction))
    validation, training = blocks[order[:held_out]], blocks[order[held_out:]]
    micro = config.train.micro_batch_size(placement.world_size)
    batches = [(training[i:i + micro * placement.world_size],)
               for i in range(0, len(training) - micro * placement.world_size + 1, micro * placement.world_size)]
    shard = [(b[0][placement.rank * micro:(placement.rank + 1) * micro],) for b in batches]
    source = ListSource(shard, seed=config.train.seed)
    loss = LMLoss(model)
    seed_dropout(loss, config.train.seed)
    optimizer = AdamW(loss.trainable_params(), config.train.betas, config.train.eps, config.train.weight_decay)
    step = TrainStep(loss, optimizer, config.train.max_grad_norm, config.train.grad_accum, placement.world_size)
    eval_batch = 2 * micro

    def validation_loss() -> dict:
        loss.set_train(False)
        from mindspore import Tensor

        values = [float(loss(Tensor(validation[i:i + eval_batch]))[0]) for i in range(0, len(validation), eval_batch)]
        weights = [len(validation[i:i + eval_batch]) for i in range(0, len(validation), eval_batch)]
        mean = float(np.average(values, weights=weights))
        return {"val_loss": mean, "perplexity": math.exp(min(mean, 50.0))}

    if placement.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not resume or not (output_dir / "config.yaml").exists():
            save(config, output_dir / "config.yaml")
        print(f"pre-training on {len(training)} blocks of {block_size} tokens ({len(documents)} documents), "
              f"{len(validation)} held out; vocabulary {tokenizer.vocab_size}")
    trainer = Trainer(step, config.train, output_dir, evaluate=validation_loss, best_metric="val_loss",
                      placement=placement)
    state = trainer.fit(source, resume=resume)
    if placement.is_main:
        model.save_pretrained(tokenizer_dir)
        tokenizer.save_pretrained(tokenizer_dir)
    return {"state": state, "model_dir": tokenizer_dir, "validation": validation_loss()}
