"""Fine-tuning a GPT on a task, end to end: build, train, pick the best checkpoint, test, export.

This is where the pieces meet: a `Task`, a backbone and tokenizer, batches, and the recipe. The trainer
underneath stays generic; everything that knows about tasks, predictions and the exported model is here.

    >>> task = Task("classification", labels=("negative", "positive"), max_length=128)
    >>> model = build_task_model(GPT.from_pretrained("openai-gpt"), task, tokenizer)
    >>> result = finetune(model, task, train, validation, TrainConfig(), "runs/sst2", test=test)
    >>> result["test"]["accuracy"]

An exported model folder holds the backbone in the Hugging Face layout (`config.json`,
`model.safetensors`), `head.safetensors`, `task.json` and `tokenizer.json`; `load_task_model` reads it.
"""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import mindspore as ms
import numpy as np
from mindspore import Tensor
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from . import checkpoint as ckpt
from .config import TrainConfig
from .device import Placement
from .errors import ModelFileError
from .formats import Batch
from .layers import named_parameters, seed_dropout
from .losses import TaskLoss
from .metrics import compute_metrics, confusion_matrix
from .model import GPT
from .optim import AdamW
from .runlog import RunLog, plot_confusion_matrix
from .task_model import TaskModel
from .tasks import Task
from .tokenizer import Tokenizer
from .train_step import TrainStep, any_shape
from .trainer import BatchSource, Trainer


def build_task_model(backbone: GPT, task: Task, tokenizer: Tokenizer, dropout: float = 0.1, seed: int = 0) -> TaskModel:
    """Grow the backbone's embedding for the task tokens (new rows N(0, 0.02)) and attach the task's head.

    `seed` draws the new embedding rows and the head's weights.
    """
    if tokenizer.vocab_size < backbone.config.vocab_size:
        raise ModelFileError(f"the tokenizer has {tokenizer.vocab_size} ids (task tokens included) but the model "
                             f"embeds {backbone.config.vocab_size}: they were not made for each other")
    backbone.resize_token_embeddings(tokenizer.vocab_size, seed=seed)
    ms.set_seed(seed)
    return TaskModel(backbone, task.build_head(backbone.config.n_embd, dropout))


def predict_logits(model: TaskModel, task: Task, batches: Sequence[Batch]) -> list[np.ndarray]:
    """Task logits of every example, in batch order (one array per example; multiple choice varies in K)."""
    model.set_train(False)
    logits = []
    for batch in batches:
        out = model(Tensor(batch.ids), Tensor(batch.positions)).asnumpy()
        for row, positions in zip(out, batch.positions):
            # Drop padded choices, so an example's scores are exactly its own answers.
            logits.append(row[positions >= 0] if task.kind == "multiple_choice" else row)
    return logits


def compile_for_any_length(model: TaskModel, batch: Batch) -> None:
    """Make the model's forward pass one graph for batches of every length (see `TrainConfig.dynamic_length`)."""
    model.set_inputs(*any_shape((batch.ids, batch.positions)))


def evaluate(model: TaskModel, task: Task, batches: Sequence[Batch]) -> tuple[dict, np.ndarray, list[np.ndarray]]:
    """(metrics, predictions, logits) over `batches`, whose labels are the truth."""
    logits = predict_logits(model, task, batches)
    predictions = np.array([task.predict(row[None])[0] for row in logits])
    labels = np.concatenate([batch.labels for batch in batches])
    return compute_metrics(task.metric_names, predictions, labels), predictions, logits


def prediction_records(task: Task, predictions: np.ndarray, logits: list[np.ndarray], ids: Sequence | None = None) -> list[dict]:
    """One record per example: `id`, then `label` and `probabilities` (classes), `score` (regression), or
    `answer` and `probabilities` (multiple choice)."""
    records = []
    for i, (prediction, row) in enumerate(zip(predictions, logits)):
        record = {"id": ids[i] if ids is not None else i}
        if task.labels:
            record["label"] = task.labels[int(prediction)]
            record["probabilities"] = dict(zip(task.labels, task.probabilities(row[None])[0].round(6).tolist()))
        elif task.is_regression:
            record["score"] = float(prediction)
        else:
            record["answer"] = int(prediction)
            record["probabilities"] = task.probabilities(row[None])[0].round(6).tolist()
        records.append(record)
    return records


def write_predictions(path: Path, task: Task, predictions: np.ndarray, logits: list[np.ndarray],
                      ids: Sequence | None = None) -> list[dict]:
    """Write `prediction_records` as JSON lines and return them."""
    records = prediction_records(task, predictions, logits, ids)
    with open(path, "w") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    return records


def make_train_step(model: TaskModel, task: Task, config: TrainConfig, placement: Placement) -> TrainStep:
    loss = TaskLoss(model, task.loss_fn(), config.lm_coef)
    seed_dropout(loss, config.seed)
    optimizer = AdamW(loss.trainable_params(), config.betas, config.eps, config.weight_decay)
    scaler = None
    if placement.precision != "float32":
        ms.amp.auto_mixed_precision(model, amp_level="auto", dtype=getattr(ms, placement.precision))
        if placement.precision == "float16":
            scaler = ms.amp.DynamicLossScaler(scale_value=2.0**16, scale_factor=2, scale_window=1000)
    return TrainStep(loss, optimizer, config.max_grad_norm, config.grad_accum, placement.world_size, scaler)


def finetune(model: TaskModel, task: Task, train: BatchSource, validation: Sequence[Batch], config: TrainConfig,
             output_dir, *, test: Sequence[Batch] | None = None, test_ids: Sequence | None = None,
             tokenizer: Tokenizer | None = None, placement: Placement | None = None, resume: bool = False) -> dict:
    """Train `model` on `train`, evaluating on `validation`; then test the best checkpoint and export it.

    Returns `{"state": trainer state, "test": test metrics or None, "model_dir": exported folder}`.
    Writes under `output_dir`: `metrics.jsonl` (a `{"split": "test", ...}` record last),
    `checkpoints/`, `learning_curves.png`, `predictions-test.jsonl`, for classification
    `confusion_matrix.png`, and `model/` (the best weights, loadable by `load_task_model`).
    """
    placement = placement or Placement("CPU", "graph", "float32")
    output_dir = Path(output_dir)
    step = make_train_step(model, task, config, placement)
    if config.dynamic_length and (validation or test):
        compile_for_any_length(model, (validation or test)[0])

    def on_validation() -> dict:
        return evaluate(model, task, validation)[0]

    trainer = Trainer(step, config, output_dir, evaluate=on_validation if validation else None,
                      best_metric=task.metric_names[0], placement=placement)
    state = trainer.fit(train, resume=resume)
    result = {"state": state, "test": None, "model_dir": None}
    if not placement.is_main:
        return result  # the replicas are identical (see Trainer.fit); rank 0 alone tests and exports
    if state.get("best_step") is not None:
        best = trainer.checkpoints / ckpt.checkpoint_name(state["best_step"])
        model_state = {k: v for k, v in trainer.state.items() if not k.startswith("optimizer.")}
        ckpt.load_checkpoint(best, model_state, allow_extra=True)
    if test:
        metrics, predictions, logits = evaluate(model, task, test)
        result["test"] = metrics
        RunLog(output_dir / "metrics.jsonl").write({"step": state["step"], "split": "test", **metrics})
        write_predictions(output_dir / "predictions-test.jsonl", task, predictions, logits, test_ids)
        if task.labels:
            labels = np.concatenate([b.labels for b in test])
            matrix = confusion_matrix(predictions, labels, len(task.labels))
            plot_confusion_matrix(matrix, task.labels, output_dir / "confusion_matrix.png", "test split")
    result["model_dir"] = output_dir / "model"
    save_task_model(model, task, result["model_dir"], tokenizer)
    return result


def save_task_model(model: TaskModel, task: Task, folder, tokenizer: Tokenizer | None = None) -> None:
    """Export backbone (Hugging Face layout), head, task and tokenizer into `folder`."""
    folder = Path(folder)
    model.backbone.save_pretrained(folder)
    head = {name: np.ascontiguousarray(p.asnumpy()) for name, p in named_parameters(model.head, trainable_only=True).items()}
    save_file(head, str(folder / "head.safetensors"))
    (folder / "task.json").write_text(json.dumps(asdict(task), indent=1) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def load_task_model(folder) -> tuple[TaskModel, Task, Tokenizer]:
    """Read a folder written by `save_task_model` (or `finetune`): the model, its task and its tokenizer."""
    folder = Path(folder)
    if not (folder / "task.json").is_file():
        raise ModelFileError(f"{folder} has no task.json: it is not a fine-tuned gptft model folder")
    values = json.loads((folder / "task.json").read_text())
    task = Task(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    tokenizer = Tokenizer.from_pretrained(folder)
    backbone = GPT.from_pretrained(folder)
    model = TaskModel(backbone, task.build_head(backbone.config.n_embd))
    try:
        saved = load_file(str(folder / "head.safetensors"))
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{folder / 'head.safetensors'}: unreadable ({error})") from None
    params = named_parameters(model.head, trainable_only=True)
    if set(saved) != set(params) or any(saved[k].shape != tuple(p.shape) for k, p in params.items()):
        raise ModelFileError(f"{folder / 'head.safetensors'} does not fit a {task.head_name} head "
                             f"(holds {sorted(saved)}, expected {sorted(params)})")
    for name, param in params.items():
        param.set_data(Tensor(saved[name]))
    if tokenizer.vocab_size != backbone.config.vocab_size:
        raise ModelFileError(f"{folder}: the tokenizer has {tokenizer.vocab_size} ids, the model {backbone.config.vocab_size}")
    return model, task, tokenizer

