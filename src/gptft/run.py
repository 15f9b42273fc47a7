"""What `gptft train`, `gptft eval` and `gptft predict` do, as Python functions.

    >>> from gptft.run import train
    >>> from gptft.runconfig import RunConfig, load
    >>> result = train(load(RunConfig, "configs/imdb.yaml", ["train.epochs=1"]))
    >>> result["test"]["accuracy"]
"""

from pathlib import Path

import numpy as np

from . import data as data_module
from . import device as device_module
from .config import GPTConfig
from .errors import ConfigError, DataError, ModelFileError
from .finetune import (build_task_model, compile_for_any_length, evaluate, finetune, load_task_model,
                       predict_logits, prediction_records, write_predictions)
from .heads import HEADS
from .model import GPT
from .runconfig import DataConfig, ModelSection, RunConfig, save
from .tasks import Task
from .tokenizer import Tokenizer


def load_backbone(section: ModelSection, tokenizer: Tokenizer, seed: int = 0) -> GPT:
    """The backbone a config asks for: released weights, or a fresh model from a preset."""
    if section.pretrained:
        return GPT.from_pretrained(section.pretrained, **section.config)
    config = GPTConfig.preset(section.preset, **{"vocab_size": tokenizer.vocab_size, **section.config})
    return GPT(config, seed=seed)


def load_examples(config: DataConfig, task: Task, seed: int) -> dict:
    """{"train", "validation", "test"} Examples; validation carved from train when the data has none."""
    def read(split: str, name: str):
        return data_module.read_examples(data_module.load_split(config, split), task, config, f"{name} split ({split})")

    splits = {"train": read(config.train, "train")}
    if config.validation:
        splits["validation"] = read(config.validation, "validation")
    else:
        splits["train"], splits["validation"] = data_module.split_off_validation(
            splits["train"], config.validation_fraction, seed)
    splits["test"] = read(config.test, "test") if config.test else None
    return splits


def _check_output_dir(output_dir: Path, resume: bool) -> None:
    """Refuse to start over another run's files; everything in the folder stays as it was."""
    if resume:
        return
    if (output_dir / "checkpoints").is_dir() and any((output_dir / "checkpoints").iterdir()):
        raise ConfigError(f"{output_dir} holds another run's checkpoints; pass --resume to continue it, "
                          "or choose another --output-dir")


def train(config: RunConfig, resume: bool = False) -> dict:
    """Fine-tune as `config` says; returns the result of `finetune` plus the padding share."""
    output_dir = Path(config.output_dir)
    _check_output_dir(output_dir, resume)
    if config.task.head_name not in HEADS:  # before any slow work: custom heads register on import
        raise ConfigError(f"task.head: unknown head {config.task.head_name!r}; registered heads: "
                          f"{', '.join(sorted(HEADS))}")
    placement = device_module.setup(config.device, config.mode, config.train.precision)
    tokenizer = Tokenizer.from_pretrained(config.tokenizer_source)
    backbone = load_backbone(config.model, tokenizer, config.train.seed)
    if tokenizer.base_vocab_size > backbone.config.vocab_size:
        raise ModelFileError(f"tokenizer {config.tokenizer_source} has {tokenizer.base_vocab_size} tokens but the "
                             f"model embeds {backbone.config.vocab_size}: they do not belong together")
    task = config.task
    splits = load_examples(config.data, task, config.train.seed)
    encoded = {name: data_module.encode(examples, task, tokenizer, config.data.cache_dir)
               for name, examples in splits.items() if examples is not None}
    micro = config.train.micro_batch_size(placement.world_size)
    train_batches = data_module.TrainBatches(encoded["train"], task, micro, seed=config.train.seed,
                                             rank=placement.rank, world_size=placement.world_size,
                                             buckets=config.data.buckets)
    if train_batches.num_batches // config.train.grad_accum < 1:
        raise DataError(f"the training split has {len(encoded['train'])} examples, fewer than one batch of "
                        f"{config.train.batch_size}")
    eval_size = config.eval_batch_size(placement.world_size)
    validation, _ = data_module.eval_batches(encoded["validation"], task, eval_size, config.data.buckets)
    test, test_ids = (data_module.eval_batches(encoded["test"], task, eval_size, config.data.buckets)
                      if "test" in encoded else (None, None))
    model = build_task_model(backbone, task, tokenizer, config.train.classifier_dropout, config.train.seed)
    if placement.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not resume or not (output_dir / "config.yaml").exists():
            save(config, output_dir / "config.yaml")
        share = train_batches.padding_share()
        print(f"data: {len(encoded['train'])} train, {len(encoded['validation'])} validation, "
              f"{len(encoded.get('test', []))} test examples; padded tokens {share:.1%} of the computed ones; "
              f"batch lengths {', '.join(map(str, train_batches.buckets))}")
    result = finetune(model, task, train_batches, validation, config.train, output_dir, test=test,
                      test_ids=test_ids, tokenizer=tokenizer, placement=placement, resume=resume)
    return result


def evaluate_model(model_dir, config: DataConfig, split: str, output=None, batch_size: int = 16,
                   dynamic_length: bool = False) -> dict:
    """Metrics of an exported model on one labeled split; predictions written to `output` (JSONL) if given.

    `dynamic_length` compiles one graph for all batch lengths (see `TrainConfig.dynamic_length`)."""
    model, task, tokenizer = load_task_model(model_dir)
    examples = data_module.read_examples(data_module.load_split(config, split), task, config, f"split {split}")
    encoded = data_module.encode(examples, task, tokenizer, config.cache_dir)
    batches, ids = data_module.eval_batches(encoded, task, batch_size, config.buckets)
    if dynamic_length:
        compile_for_any_length(model, batches[0])
    metrics, predictions, logits = evaluate(model, task, batches)
    if output:
        write_predictions(Path(output), task, predictions, logits, ids)
    return metrics


def predict(model_dir, rows: list[dict], output=None, batch_size: int = 16, dynamic_length: bool = False) -> list[dict]:
    """Predictions for unlabeled rows (dicts with the task's fields as text), in input order.

    `dynamic_length` compiles one graph for all batch lengths (see `TrainConfig.dynamic_length`)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    model, task, tokenizer = load_task_model(model_dir)
    fields = {name: [] for name in task.fields}
    for number, row in enumerate(rows):
        for name in task.fields:
            if name not in row:
                raise DataError(f"input row {number}: field {name!r} is missing (a {task.kind} task reads "
                                f"{', '.join(task.fields)})")
            fields[name].append(row[name])
    placeholder = 0.0 if task.is_regression else 0
    examples = data_module.Examples(fields, [placeholder] * len(rows), list(range(len(rows))), "input")
    encoded = data_module.encode(examples, task, tokenizer, use_cache=False)
    batches, order = data_module.eval_batches(encoded, task, batch_size)
    if dynamic_length:
        compile_for_any_length(model, batches[0])
    logits = predict_logits(model, task, batches)
    by_input = [None] * len(rows)
    for position, row_logits in zip(order, logits):
        by_input[position] = row_logits
    predictions = np.array([task.predict(row[None])[0] for row in by_input])
    if output:
        return write_predictions(Path(output), task, predictions, by_input)
    return prediction_records(task, predictions, by_input)
