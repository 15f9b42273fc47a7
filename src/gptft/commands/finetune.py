"""`gptft train`: fine-tune a GPT on a task with the paper's recipe, end to end.

config -> tokenizer and backbone -> data -> task model -> trainer -> best checkpoint -> test -> export.

    >>> from gptft import RunConfig, load_config, train
    >>> result = train(load_config(RunConfig, "configs/imdb.yaml", ["train.epochs=1"]))
    >>> result.test["accuracy"]
"""

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import mindspore as ms
import numpy as np

from ..data.batches import TrainBatches, eval_batches
from ..data.encoding import encode
from ..data.loading import load_task_splits
from ..errors import DataError, ModelFileError
from ..model.layers import seed_dropout
from ..model.lora import add_adapters, count_parameters, save_adapter
from ..model.tokenizer import Tokenizer
from ..tasks.evaluation import evaluate, write_predictions
from ..tasks.heads import head_factory
from ..tasks.losses import TaskLoss
from ..tasks.metrics import confusion_matrix
from ..tasks.task_model import TaskModel
from ..training import compile_cache, device
from ..training.config import TrainConfig
from ..training.device import Placement
from ..training.optim import AdamW
from ..training.runlog import plot_confusion_matrix
from ..training.step import TrainStep
from ..training.trainer import Progress, Trainer
from . import run_folder
from .configfile import to_dict
from .schema import RunConfig


@dataclass
class FinetuneResult:
    """What `train` returns: where training ended, the test metrics (None without a test split), and the
    exported model folder (None on data-parallel workers other than rank 0)."""

    progress: Progress
    test: dict | None
    model_dir: Path | None


class TaskData(NamedTuple):
    """One worker's training batches, the evaluation batches, and the test examples' ids in batch order."""

    train: TrainBatches
    validation: list
    test: list | None
    test_ids: list | None


def train(config: RunConfig, resume: bool = False) -> FinetuneResult:
    """Fine-tune as `config` says, writing everything under `config.output_dir` (README, "The output folder")."""
    task, recipe = config.task, config.train
    head_factory(task.head_name, "task.head")  # before slow work: custom heads register when their module loads
    placement = device.setup(config.device, config.mode, recipe.precision)
    with run_folder.claimed(config.output_dir, config, resume, placement.is_main) as output_dir:
        tokenizer = Tokenizer.from_pretrained(config.tokenizer_source)
        backbone = config.model.load(tokenizer, recipe.seed)
        if tokenizer.base_vocab_size > backbone.config.vocab_size:
            raise ModelFileError(f"tokenizer {config.tokenizer_source} has {tokenizer.base_vocab_size} tokens but "
                                 f"the model embeds {backbone.config.vocab_size}: they do not belong together")
        data = prepare_data(config, tokenizer, placement)
        pretrained_rows = backbone.config.vocab_size
        model = TaskModel.for_task(backbone, task, tokenizer, recipe.classifier_dropout, recipe.seed)
        if recipe.lora.rank:
            add_adapters(backbone, recipe.lora, first_new_row=pretrained_rows, seed=recipe.seed)
        if placement.is_main:
            trained, total = count_parameters(model)
            print(f"parameters: {trained:,} trained of {total:,} ({trained / total:.2%})")
        if recipe.dynamic_length:
            model.compile_for_any_length()
        if placement.is_main:
            run_folder.start(output_dir, config, resume)
        trainer = Trainer(task_train_step(model, recipe, placement), recipe, output_dir,
                          evaluate=lambda: evaluate(model, data.validation).metrics,
                          best_metric=task.metric_names[0], placement=placement)
        with compile_cache.cached(graph_key(config, model, data, placement, resume)):
            progress = trainer.fit(data.train, resume=resume)
            if not placement.is_main:
                return FinetuneResult(progress, None, None)  # the replicas are identical: rank 0 tests and exports
            trainer.restore_best(progress)
            test = _test(output_dir, trainer, model, task, data, progress) if data.test else None
        model.save_pretrained(output_dir / "model")
        tokenizer.save_pretrained(output_dir / "model")
        if recipe.lora.rank and config.model.pretrained:  # a preset's random base could not be found again
            save_adapter(backbone, output_dir / "model", base=_source(config.model.pretrained))
    return FinetuneResult(progress, test, output_dir / "model")


def _source(name_or_path: str) -> str:
    """A model source as an adapter-only folder records it: a local folder's absolute path, else the hub name."""
    return str(Path(name_or_path).resolve()) if Path(name_or_path).is_dir() else name_or_path


def _test(output_dir: Path, trainer: Trainer, model: TaskModel, task, data: "TaskData", progress: Progress) -> dict:
    """Evaluate the restored best model on the test split; log the metrics, write predictions and the
    confusion matrix; returns the metrics."""
    result = evaluate(model, data.test)
    trainer.log.write({"step": progress.step, "split": "test", **result.metrics})
    write_predictions(output_dir / "predictions-test.jsonl", task, result.predictions, result.logits, data.test_ids)
    if task.labels:
        labels = np.concatenate([b.labels for b in data.test])
        matrix = confusion_matrix(result.predictions, labels, len(task.labels))
        plot_confusion_matrix(matrix, task.labels, output_dir / "confusion_matrix.png", "test split")
    return result.metrics


def graph_key(config: RunConfig, model: TaskModel, data: TaskData, placement: Placement, resume: bool) -> dict | None:
    """What decides the graphs a fine-tuning run compiles and their order (see `compile_cache`), or None
    when that order cannot be known in advance (a resumed run with a graph per batch length)."""
    head_source = compile_cache.code_of(type(model.head))
    if head_source is None:
        return None
    key = {"command": "train", "model": model.backbone.config.to_dict(), "head": head_source,
           "rank": placement.rank, "world_size": placement.world_size}
    if config.train.dynamic_length:  # one graph per cell, compiled in a fixed order: the data cannot matter
        return {**key, "run": compile_cache.graph_settings(to_dict(config), compile_cache.NOT_IN_GRAPHS + (
            "seed", "epochs", "max_steps", "eval_every", "data"))}
    if resume:
        return None
    # One graph per batch length, in the order the seeded batches meet them: the lengths decide it.
    lengths = [data.train.lengths.tolist(), [b.ids.shape for b in data.validation],
               [b.ids.shape for b in data.test or []]]
    return {**key, "run": compile_cache.graph_settings(to_dict(config)), "lengths": lengths}


def prepare_data(config: RunConfig, tokenizer: Tokenizer, placement: Placement) -> TaskData:
    """Read, check, tokenize (cached) and batch the run's splits; rank 0 prints what it got."""
    task, recipe = config.task, config.train
    splits = load_task_splits(config.data, task, recipe.seed)
    encoded = {name: encode(examples, task, tokenizer, config.data.cache_dir)
               for name, examples in splits.items() if examples is not None}
    train_batches = TrainBatches(encoded["train"], task, recipe.micro_batch_size(placement.world_size),
                                 seed=recipe.seed, rank=placement.rank, world_size=placement.world_size,
                                 buckets=config.data.buckets)
    if train_batches.num_batches // recipe.grad_accum < 1:
        raise DataError(f"the training split has {len(encoded['train'])} examples, fewer than one batch of "
                        f"{recipe.batch_size}")
    eval_size = config.eval_batch_size(placement.world_size)
    validation, _ = eval_batches(encoded["validation"], task, eval_size, config.data.buckets)
    test, test_ids = (eval_batches(encoded["test"], task, eval_size, config.data.buckets)
                      if "test" in encoded else (None, None))
    if placement.is_main:
        print(f"data: {len(encoded['train'])} train, {len(encoded['validation'])} validation, "
              f"{len(encoded.get('test', []))} test examples; padded tokens {train_batches.padding_share():.1%} of "
              f"the computed ones; batch lengths {', '.join(map(str, train_batches.buckets))}")
    return TaskData(train_batches, validation, test, test_ids)


def task_train_step(model: TaskModel, recipe: TrainConfig, placement: Placement | None = None) -> TrainStep:
    """The compiled step of the fine-tuning objective (task loss + λ · LM loss) with AdamW, its dropout
    seeded from the recipe's seed, and float16 loss scaling or bfloat16 where the placement asks."""
    placement = placement or Placement("CPU", "graph", "float32")
    loss = TaskLoss(model, model.task.loss_fn(), recipe.lm_coef)
    seed_dropout(loss, recipe.seed)
    optimizer = AdamW(loss.trainable_params(), recipe.betas, recipe.eps, recipe.weight_decay)
    scaler = None
    if placement.precision != "float32":
        ms.amp.auto_mixed_precision(model, amp_level="auto", dtype=getattr(ms, placement.precision))
        if placement.precision == "float16":
            scaler = ms.amp.DynamicLossScaler(scale_value=2.0**16, scale_factor=2, scale_window=1000)
    return TrainStep(loss, optimizer, recipe.max_grad_norm, recipe.grad_accum, placement.world_size, scaler)
