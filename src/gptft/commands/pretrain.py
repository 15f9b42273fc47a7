"""`gptft pretrain`: the first GPT stage, language modelling on unlabeled text (Radford et al. 2018, 3.1).

config -> text -> tokenizer (loaded, or trained on the same text) -> model -> blocks -> trainer -> export.
The default schedule is the paper's (`schema.PRETRAIN_RECIPE`). The output folder's `model/` (weights in
the Hugging Face layout plus `tokenizer.json`) is what `gptft train` loads as
`model: {pretrained: .../model}`.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mindspore import Tensor

from ..data.text import block_batches, make_blocks, read_documents
from ..errors import ConfigError
from ..model.layers import seed_dropout
from ..model.tokenizer import Tokenizer, train_bpe
from ..tasks.losses import LanguageModelLoss
from ..training import compile_cache, device
from ..training.optim import AdamW
from ..training.step import TrainStep
from ..training.trainer import ListSource, Progress, Trainer
from . import run_folder
from .configfile import to_dict
from .schema import PretrainConfig


@dataclass
class PretrainResult:
    """What `pretrain` returns: where training ended, the final validation loss, the exported model folder."""

    progress: Progress
    validation: dict
    model_dir: Path


def pretrain(config: PretrainConfig, resume: bool = False) -> PretrainResult:
    """Pre-train as `config` says, writing everything under `config.output_dir`."""
    recipe = config.train
    placement = device.setup(config.device, config.mode, recipe.precision)
    with run_folder.claimed(config.output_dir, config, resume, placement.is_main) as output_dir:
        return _pretrain(config, resume, placement, output_dir)


def _pretrain(config: PretrainConfig, resume: bool, placement: device.Placement, output_dir: Path) -> PretrainResult:
    recipe = config.train
    documents = read_documents(config.data)
    model_dir = output_dir / "model"
    if config.train_tokenizer is None:
        tokenizer = Tokenizer.from_pretrained(config.tokenizer or config.model.pretrained)
    elif resume and (model_dir / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_pretrained(model_dir)  # the one the interrupted run trained
    else:
        tokenizer = train_bpe(documents, config.train_tokenizer.vocab_size, config.train_tokenizer.min_frequency)
    model = config.model.load(tokenizer, recipe.seed)
    model.resize_token_embeddings(tokenizer.vocab_size, seed=recipe.seed)
    block_size = config.block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise ConfigError(f"block_size {block_size} exceeds the model's {model.config.block_size} positions")
    blocks = make_blocks(documents, tokenizer, block_size)
    micro = recipe.micro_batch_size(placement.world_size)
    batches, validation = block_batches(blocks, config.data.validation_fraction, micro, recipe.seed,
                                        placement.rank, placement.world_size)
    loss = LanguageModelLoss(model)
    seed_dropout(loss, recipe.seed)
    optimizer = AdamW(loss.trainable_params(), recipe.betas, recipe.eps, recipe.weight_decay)
    step = TrainStep(loss, optimizer, recipe.max_grad_norm, recipe.grad_accum, placement.world_size)

    def validation_loss() -> dict:
        loss.set_train(False)
        size = 2 * micro
        parts = [validation[i:i + size] for i in range(0, len(validation), size)]
        mean = float(np.average([float(loss(Tensor(p))[0]) for p in parts], weights=[len(p) for p in parts]))
        return {"val_loss": mean, "perplexity": math.exp(min(mean, 50.0))}

    if placement.is_main:
        run_folder.start(output_dir, config, resume)
        print(f"pre-training on {len(blocks) - len(validation)} blocks of {block_size} tokens ({len(documents)} "
              f"documents), {len(validation)} held out; vocabulary {tokenizer.vocab_size}")
    trainer = Trainer(step, recipe, output_dir, evaluate=validation_loss, best_metric="val_loss", placement=placement)
    # Every batch has one shape, so the graphs and their order follow from the settings and the block counts.
    key = {"command": "pretrain", "model": model.config.to_dict(), "blocks": [len(blocks), len(validation)],
           "run": compile_cache.graph_settings(to_dict(config)), "rank": placement.rank,
           "world_size": placement.world_size}
    with compile_cache.cached(key):
        progress = trainer.fit(ListSource(batches, seed=recipe.seed), resume=resume)
        result = PretrainResult(progress, validation_loss(), model_dir)
    if placement.is_main:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    return result
