"""`gptft eval` and `gptft predict`: an exported model folder (a run's `model/`) on labeled or new data.

    >>> metrics = evaluate_folder("runs/sst2/model", config.data, "test")
    >>> predict("runs/sst2/model", [{"text": "a fine film"}])   # [{"id": 0, "label": ..., "probabilities": ...}]
"""

from pathlib import Path

from ..data.batches import eval_batches
from ..data.config import DataConfig
from ..data.encoding import encode
from ..data.loading import Examples, load_split, read_examples
from ..errors import ConfigError, DataError, ModelFileError
from ..model.tokenizer import Tokenizer
from ..tasks.evaluation import evaluate, predict_logits, predictions_of, prediction_records, write_predictions
from ..tasks.task_model import TaskModel
from ..training import compile_cache


def load_model_folder(folder) -> tuple[TaskModel, Tokenizer]:
    """The task model and tokenizer of an exported folder, checked to belong together."""
    model = TaskModel.from_pretrained(folder)
    tokenizer = Tokenizer.from_pretrained(folder)
    if tokenizer.vocab_size != model.backbone.config.vocab_size:
        raise ModelFileError(f"{folder}: the tokenizer has {tokenizer.vocab_size} ids, the model "
                             f"{model.backbone.config.vocab_size}")
    return model, tokenizer


def _cache_key(model: TaskModel, batches, dynamic_length: bool) -> dict | None:
    """What decides an inference process's graphs: the model and the batch shapes (see `compile_cache`)."""
    head = compile_cache.code_of(type(model.head))
    if head is None:
        return None
    shapes = "any" if dynamic_length else [b.ids.shape for b in batches]
    return {"command": "inference", "model": model.backbone.config.to_dict(), "head": head, "task": repr(model.task),
            "shapes": shapes}


def evaluate_folder(model_dir, config: DataConfig, split: str, output=None, batch_size: int = 16,
                    dynamic_length: bool = False) -> dict:
    """Metrics of an exported model on one labeled split; predictions written to `output` (JSONL) if given.

    `dynamic_length` compiles one graph for all batch lengths (see `TrainConfig.dynamic_length`)."""
    model, tokenizer = load_model_folder(model_dir)
    task = model.task
    examples = read_examples(load_split(config, split), task, config, f"split {split}")
    batches, ids = eval_batches(encode(examples, task, tokenizer, config.cache_dir), task, batch_size, config.buckets)
    if dynamic_length:
        model.compile_for_any_length()
    with compile_cache.cached(_cache_key(model, batches, dynamic_length)):
        result = evaluate(model, batches)
    if output:
        write_predictions(Path(output), task, result.predictions, result.logits, ids)
    return result.metrics


def encode_rows(task, tokenizer: Tokenizer, rows: list[dict], batch_size: int = 16) -> tuple[list, list[int]]:
    """Unlabeled rows (dicts with the task's fields as text) as the model's input batches (`.ids` (B, S, T),
    `.positions` (B, S), both int32), and each example's row number in batch order."""
    fields = {name: [] for name in task.fields}
    for number, row in enumerate(rows):
        for name in task.fields:
            if name not in row:
                raise DataError(f"input row {number}: field {name!r} is missing (a {task.kind} task reads "
                                f"{', '.join(task.fields)})")
            fields[name].append(row[name])
    placeholder = 0.0 if task.is_regression else 0
    examples = Examples(fields, [placeholder] * len(rows), list(range(len(rows))), "input")
    return eval_batches(encode(examples, task, tokenizer, use_cache=False), task, batch_size)


def predict(model_dir, rows: list[dict], output=None, batch_size: int = 16, dynamic_length: bool = False) -> list[dict]:
    """Predictions for unlabeled rows (dicts with the task's fields as text), in input order.

    `dynamic_length` compiles one graph for all batch lengths (see `TrainConfig.dynamic_length`)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    model, tokenizer = load_model_folder(model_dir)
    task = model.task
    batches, order = encode_rows(task, tokenizer, rows, batch_size)
    if dynamic_length:
        model.compile_for_any_length()
    with compile_cache.cached(_cache_key(model, batches, dynamic_length)):
        logits = predict_logits(model, batches)
    by_input = [None] * len(rows)
    for position, row_logits in zip(order, logits):
        by_input[position] = row_logits
    predictions = predictions_of(task, by_input)
    if output:
        return write_predictions(Path(output), task, predictions, by_input)
    return prediction_records(task, predictions, by_input)
