"""The training loop: schedule, logging, evaluation, checkpoints, exact resume, early stopping.

It knows nothing about GPT or tasks. It gets a compiled `TrainStep` (model, loss and optimizer inside),
batches from a `BatchSource`, and an `evaluate()` callback that returns validation metrics.

Resume is exact: a step is a pure function of the parameters (weights, dropout counters, Adam moments),
the step number (schedule and bias correction) and the batch, and the data order is a function of the
seed and the epoch. A checkpoint stores the first two; the third is recomputed.
"""

import hashlib
import math
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from mindspore import Tensor
from tqdm import tqdm

from . import checkpoint as ckpt
from .config import TrainConfig
from .device import Placement, memory_in_use
from .errors import ConfigError, GptftError
from .layers import named_parameters
from .optim import SCHEDULES
from .runlog import RunLog, plot_learning_curves
from .train_step import TrainStep

# Warn when the process holds more than this share of the machine's memory after compiling a new length.
MEMORY_WARNING_SHARE = 0.6


class BatchSource(Protocol):
    """Micro-batches (tuples of NumPy arrays) for one worker, in an order fixed by the epoch number."""

    num_batches: int

    def epoch(self, epoch: int) -> Sequence[tuple]: ...


class ListSource:
    """A fixed list of micro-batches, shuffled per epoch with `seed`; each worker takes every world_size-th."""

    def __init__(self, batches: Sequence[tuple], seed: int = 0, rank: int = 0, world_size: int = 1):
        self.batches = list(batches)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_batches = len(self.batches) // world_size

    def epoch(self, epoch: int) -> list[tuple]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.batches))
        mine = order[self.rank::self.world_size][:self.num_batches]
        return [self.batches[i] for i in mine]


class TrainingDiverged(GptftError):
    """The loss became NaN or infinite."""


class CheckpointWriteError(GptftError):
    """A checkpoint could not be written (disk full, permissions); the previous ones are untouched."""


def training_state(step: TrainStep) -> dict:
    """Everything a checkpoint must hold to resume exactly, by stable names."""
    state = named_parameters(step.gradients.loss_cell)
    names = {id(p): name for name, p in state.items()}
    optimizer = step.optimizer
    for param, m, v in zip(optimizer.params, optimizer.m, optimizer.v):
        state[f"optimizer.m.{names[id(param)]}"] = m
        state[f"optimizer.v.{names[id(param)]}"] = v
    if step.loss_scaler is not None:
        state["loss_scale.value"] = step.loss_scaler.scale_value
        state["loss_scale.counter"] = step.loss_scaler.counter
    return state


def fingerprint(state: dict) -> str:
    """SHA-256 over every tensor of a training state, by name."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(state[name].asnumpy()).tobytes())
    return digest.hexdigest()


def _higher_is_better(metric: str) -> bool:
    return not metric.endswith("loss")


class Trainer:
    """Runs `config`'s recipe with `step` and writes everything under `output_dir`.

    Args:
        step: the compiled training step.
        config: the recipe (epochs, schedule, logging, evaluation and checkpoint cadence).
        output_dir: receives `metrics.jsonl`, `checkpoints/` and `learning_curves.png`.
        evaluate: returns `{metric: value}` on the validation split; None skips evaluation.
        best_metric: the metric that picks the best checkpoint (default: the first `evaluate` returns).
        placement: this worker's rank; only rank 0 writes.
        on_log: called with each training record (a hook for scripts).
    """

    def __init__(self, step: TrainStep, config: TrainConfig, output_dir, *, evaluate: Callable[[], dict] | None = None,
                 best_metric: str = "", placement: Placement | None = None,
                 on_log: Callable[[dict], None] | None = None):
        self.step_cell = step
        self.config = config
        self.output_dir = Path(output_dir)
        self.evaluate = evaluate
        self.best_metric = config.best_metric or best_metric
        self.placement = placement or Placement("CPU", "graph", "float32")
        self.on_log = on_log
        self.log = RunLog(self.output_dir / "metrics.jsonl", enabled=self.placement.is_main)
        self.checkpoints = self.output_dir / "checkpoints"
        self.state = training_state(step)
        self.compiled_shapes = set()  # batch shapes the step has run: each is a compiled graph
        self.memory_warned = False

    def _restore(self, resume: bool) -> dict:
        existing = ckpt.list_checkpoints(self.checkpoints)
        if not resume:
            if existing:
                raise ConfigError(f"{self.output_dir} already holds checkpoints of a run ({existing[-1].name}); "
                                  "pass --resume to continue it, or choose another output folder")
            return {"step": 0, "best_value": None, "best_step": None, "evals_without_improvement": 0}
        good = ckpt.latest_good(self.checkpoints, warn=self._say)
        if good is None:
            raise ConfigError(f"--resume was given but {self.checkpoints} holds no usable checkpoint")
        trainer_state = ckpt.load_checkpoint(good, self.state)
        self.log.truncate_after(trainer_state["step"])
        self._say(f"resumed from {good} (step {trainer_state['step']})")
        return trainer_state

    def _say(self, message: str) -> None:
        if self.placement.is_main:
            tqdm.write(message)

    def _save(self, state: dict) -> None:
        if not self.placement.is_main:
            return
        try:
            ckpt.save_checkpoint(self.checkpoints, state["step"], self.state, state)
        except OSError as error:
            raise CheckpointWriteError(f"could not write the checkpoint of step {state['step']} in {self.checkpoints} "
                                       f"({error.strerror or error}); the earlier checkpoints are intact: free space "
                                       "and continue with --resume") from error
        keep = {state["best_step"]} if state["best_step"] is not None else set()
        ckpt.prune(self.checkpoints, self.config.keep_last, keep)

    def _run_evaluation(self, state: dict) -> bool:
        """Evaluate, log, track the best; True when early stopping says stop."""
        metrics = self.evaluate()
        self.log.write({"step": state["step"], "split": "validation", **metrics})
        name = self.best_metric or next(iter(metrics))
        if name not in metrics:
            raise ConfigError(f"best_metric {name!r} is not among the validation metrics {sorted(metrics)}")
        value, best = metrics[name], state["best_value"]
        sign = 1 if _higher_is_better(name) else -1
        if not math.isnan(value) and (best is None or sign * value > sign * best):
            state.update(best_value=value, best_step=state["step"], best_metric=name, evals_without_improvement=0)
        else:
            state["evals_without_improvement"] += 1
        self._say(f"step {state['step']}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return 0 < self.config.patience <= state["evals_without_improvement"]

    def fit(self, data: BatchSource, resume: bool = False) -> dict:
        """Train to the end (or early stop) and return the final trainer state.

        Raises:
            ConfigError: checkpoints already exist without `resume`, or `resume` finds none.
            TrainingDiverged: the loss became NaN or infinite (the last good checkpoint stays).
        """
        config, step_cell = self.config, self.step_cell
        accumulate = config.grad_accum
        steps_per_epoch = data.num_batches // accumulate
        if steps_per_epoch < 1:
            raise ConfigError(f"the training data gives {data.num_batches} micro-batches per worker per epoch, "
                              f"fewer than grad_accum ({accumulate}): use more data or a smaller batch_size")
        total = steps_per_epoch * config.epochs
        if config.max_steps:
            total = min(total, config.max_steps)
        warmup = config.warmup_steps(total)
        schedule = SCHEDULES[config.schedule]
        state = self._restore(resume)
        if config.dynamic_length:
            step_cell.compile_for_any_length(data.epoch(0)[0])
        step_cell.set_train(True)
        progress = tqdm(total=total, initial=state["step"], disable=not self.placement.is_main,
                        dynamic_ncols=True, desc="train")
        window = {"loss": [], "task_loss": [], "lm_loss": [], "grad_norm": [], "tokens": 0, "start": time.perf_counter()}
        stop = False
        while state["step"] < total and not stop:
            epoch, offset = divmod(state["step"], steps_per_epoch)
            batches = data.epoch(epoch)
            for index in range(offset, steps_per_epoch):
                micro = batches[index * accumulate:(index + 1) * accumulate]
                parts = [step_cell.accumulate_cell(*map(Tensor, batch)) for batch in micro[:-1]]
                lr = config.lr * schedule(state["step"] + 1, total, warmup)
                *last, grad_norm = step_cell(*step_cell.optimizer.scalars(state["step"] + 1, lr), *map(Tensor, micro[-1]))
                parts.append(last)
                state["step"] += 1
                values = np.array([[float(x) for x in p[:3]] for p in parts]).mean(axis=0)
                if not np.isfinite(values).all():
                    raise TrainingDiverged(f"the loss became {values[0]} at step {state['step']}; stopped. The last "
                                           f"good checkpoint is in {self.checkpoints}; lower train.lr and --resume")
                for key, value in zip(("loss", "task_loss", "lm_loss"), values):
                    window[key].append(value)
                window["grad_norm"].append(float(grad_norm))
                window["tokens"] += sum(int(np.size(batch[0])) for batch in micro) * self.placement.world_size
                self._watch_graph_memory(micro)
                progress.update(1)
                if state["step"] % config.log_every == 0 or state["step"] == total:
                    self._log_window(window, state["step"], epoch, lr, progress)
                end_of_epoch = index == steps_per_epoch - 1
                evaluate_now = self.evaluate is not None and (
                    (config.eval_every and state["step"] % config.eval_every == 0)
                    or (not config.eval_every and end_of_epoch) or state["step"] == total)
                if evaluate_now:
                    stop = self._run_evaluation(state)
                    step_cell.set_train(True)
                if evaluate_now or end_of_epoch or state["step"] == total or stop or (
                        config.save_every and state["step"] % config.save_every == 0):
                    self._save(state)
                if stop or state["step"] == total:
                    break
        progress.close()
        if stop:
            self._say(f"early stopping at step {state['step']}: {state['evals_without_improvement']} evaluations "
                      f"without a better {state.get('best_metric')}")
        if self.placement.world_size > 1:
            # Every worker prints this; equal fingerprints show the data-parallel replicas stayed in step.
            print(f"rank {self.placement.rank}: final training state sha256 {fingerprint(self.state)}", flush=True)
        if self.placement.is_main:
            plot_learning_curves(self.log.records(), self.output_dir / "learning_curves.png")
        return state

    def _watch_graph_memory(self, micro: Sequence[tuple]) -> None:
        """Warn once when the graphs compiled per batch length fill most of the machine's memory.

        On CPU each compiled graph keeps the memory of all its intermediates, so every new batch length
        adds its own share; the warning comes before the next lengths run the process out of memory.
        """
        if self.config.dynamic_length or self.placement.target != "CPU" or self.placement.mode != "graph":
            return
        new = {batch[0].shape for batch in micro} - self.compiled_shapes
        if not new or self.memory_warned:
            return
        self.compiled_shapes.update(new)
        memory = memory_in_use()
        if memory is not None and memory[0] > MEMORY_WARNING_SHARE * memory[1]:
            self.memory_warned = True
            self._say(f"warning: the process holds {memory[0]:.1f} of the machine's {memory[1]:.1f} GB after "
                      f"compiling the step for {len(self.compiled_shapes)} batch shapes; on CPU each compiled batch "
                      f"length keeps its own memory, so the next ones may exhaust it: set train.dynamic_length: "
                      f"true (one graph for all lengths) or a smaller micro-batch (a larger train.grad_accum)")

    def _log_window(self, window: dict, step: int, epoch: int, lr: float, progress) -> None:
        elapsed = time.perf_counter() - window["start"]
        record = {"step": step, "epoch": epoch, "lr": lr, "tokens_per_s": window["tokens"] / max(elapsed, 1e-9)}
        for key in ("loss", "task_loss", "lm_loss", "grad_norm"):
            record[key] = float(np.mean(window[key]))
            window[key].clear()
        window["tokens"], window["start"] = 0, time.perf_counter()
        self.log.write(record)
        progress.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if self.on_log is not None:
            self.on_log(record)
