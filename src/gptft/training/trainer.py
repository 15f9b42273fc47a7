"""The training loop: schedule, logging, evaluation, checkpoints, exact resume, early stopping.

It knows nothing about GPT or tasks. It gets a compiled `TrainStep` (model, loss and optimizer inside),
micro-batches from a `BatchSource`, and an `evaluate()` callback that returns validation metrics; it logs
whatever loss parts the step reports, under their names.

Resume is exact: a step is a pure function of the parameters (weights, dropout counters, Adam moments),
the step number (schedule and bias correction) and the batch, and the data order is a function of the
seed and the epoch. A checkpoint stores the first two (`TrainStep.checkpoint_state`) and the loop's
`Progress`; the third is recomputed.

SIGTERM and SIGINT stop a run cleanly: the step in flight finishes, a checkpoint is written, and `fit`
raises `TrainingInterrupted` (see `interrupt`), from which `--resume` continues exactly.
"""

import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, GptftError
from . import checkpoints as ckpt
from .config import TrainConfig
from .device import Placement, memory_in_use
from .interrupt import StopRequests, TrainingInterrupted, any_rank_vote
from .optim import SCHEDULES
from .runlog import RunLog, plot_learning_curves
from .step import TrainStep

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


@dataclass
class Progress:
    """Where a run stands: saved in every checkpoint (`trainer.json`) and returned by `Trainer.fit`."""

    step: int = 0
    best_value: float | None = None
    best_step: int | None = None
    best_metric: str | None = None
    evals_without_improvement: int = 0

    def record(self, metric: str, value: float) -> None:
        """Count one evaluation of `metric`; a better value (higher, or lower for a loss) becomes the best."""
        sign = -1 if metric.endswith("loss") else 1
        if not math.isnan(value) and (self.best_value is None or sign * value > sign * self.best_value):
            self.best_value, self.best_step, self.best_metric = value, self.step, metric
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1


class Trainer:
    """Runs `config`'s recipe with `step` and writes everything under `output_dir`.

    Args:
        step: the compiled training step.
        config: the recipe (epochs, schedule, logging, evaluation and checkpoint cadence).
        output_dir: receives `metrics.jsonl` (`self.log`), `checkpoints/` and `learning_curves.png`.
        evaluate: returns `{metric: value}` on the validation split; None skips evaluation.
        best_metric: the metric that picks the best checkpoint (default: the first `evaluate` returns).
        placement: this worker's rank; only rank 0 writes.
        on_log: called with each training record (a hook for scripts).
    """

    def __init__(self, step: TrainStep, config: TrainConfig, output_dir, *, evaluate: Callable[[], dict] | None = None,
                 best_metric: str = "", placement: Placement | None = None,
                 on_log: Callable[[dict], None] | None = None):
        self.step = step
        self.config = config
        self.output_dir = Path(output_dir)
        self.evaluate = evaluate
        self.best_metric = config.best_metric or best_metric
        self.placement = placement or Placement("CPU", "graph", "float32")
        self.on_log = on_log
        self.log = RunLog(self.output_dir / "metrics.jsonl", enabled=self.placement.is_main)
        self.checkpoints = self.output_dir / "checkpoints"
        self.tensors = step.checkpoint_state()
        self._any_rank = any_rank_vote() if self.placement.world_size > 1 else None
        self.compiled_shapes = set()  # batch shapes the step has run: each is a compiled graph
        self.memory_warned = False

    def fit(self, data: BatchSource, resume: bool = False) -> Progress:
        """Train to the end (or early stop) and return where the run ended.

        With `resume` it continues from the newest good checkpoint, or starts from step 0 when there is none.

        Raises:
            ConfigError: checkpoints already exist without `resume`.
            TrainingDiverged: the loss became NaN or infinite (the last good checkpoint stays).
            TrainingInterrupted: SIGTERM or SIGINT arrived; the step in flight finished and was checkpointed.
        """
        config = self.config
        steps_per_epoch = data.num_batches // config.grad_accum
        if steps_per_epoch < 1:
            raise ConfigError(f"the training data gives {data.num_batches} micro-batches per worker per epoch, "
                              f"fewer than grad_accum ({config.grad_accum}): use more data or a smaller batch_size")
        total = steps_per_epoch * config.epochs
        if config.max_steps:
            total = min(total, config.max_steps)
        warmup = config.warmup_steps(total)
        schedule = SCHEDULES[config.schedule]
        progress = self._resume() if resume else self._start()
        if config.dynamic_length:
            self.step.compile_for_any_length(data.epoch(0)[0])
        self.step.set_train(True)
        bar = tqdm(total=total, initial=progress.step, disable=not self.placement.is_main, dynamic_ncols=True,
                   desc="train")
        window = _Window()
        stop = False
        with StopRequests() as requests:
            while progress.step < total and not stop:
                epoch, offset = divmod(progress.step, steps_per_epoch)
                batches = data.epoch(epoch)
                for index in range(offset, steps_per_epoch):
                    micro = batches[index * config.grad_accum:(index + 1) * config.grad_accum]
                    lr = config.lr * schedule(progress.step + 1, total, warmup)
                    losses, grad_norm = self.step.train_on(micro, progress.step + 1, lr)
                    progress.step += 1
                    first = next(iter(losses.values()))
                    if not math.isfinite(first):
                        raise TrainingDiverged(f"the loss became {first} at step {progress.step}; stopped. The last "
                                               f"good checkpoint is in {self.checkpoints}; lower train.lr and --resume")
                    window.add(losses, grad_norm, sum(int(np.size(b[0])) for b in micro) * self.placement.world_size)
                    self._watch_graph_memory(micro)
                    bar.update(1)
                    if progress.step % config.log_every == 0 or progress.step == total:
                        self._write_training_record(window.close(progress.step, epoch, lr), bar)
                    end_of_epoch = index == steps_per_epoch - 1
                    evaluate_now = self.evaluate is not None and (
                        (config.eval_every and progress.step % config.eval_every == 0)
                        or (not config.eval_every and end_of_epoch) or progress.step == total)
                    if evaluate_now:
                        stop = self._evaluate(progress)
                        self.step.set_train(True)
                    saved = evaluate_now or end_of_epoch or progress.step == total or stop or (
                        config.save_every and progress.step % config.save_every == 0)
                    if saved:
                        self._save(progress)
                    signum = self._stop_requested(requests)
                    if signum:
                        bar.close()
                        self._stop_on_signal(signum, progress, saved)
                    if stop or progress.step == total:
                        break
        bar.close()
        if stop:
            self._say(f"early stopping at step {progress.step}: {progress.evals_without_improvement} evaluations "
                      f"without a better {progress.best_metric}")
        if self.placement.world_size > 1:
            # Every worker prints this; equal fingerprints show the data-parallel replicas stayed in step.
            print(f"rank {self.placement.rank}: final training state sha256 {ckpt.fingerprint(self.tensors)}", flush=True)
        if self.placement.is_main:
            plot_learning_curves(self.log.records(), self.output_dir / "learning_curves.png", self.step.loss_names)
        return progress

    def restore_best(self, progress: Progress) -> None:
        """Load the best checkpoint's weights into the step (the optimizer state stays); no-op without one."""
        if progress.best_step is not None:
            ckpt.load_checkpoint(self.checkpoints / ckpt.checkpoint_name(progress.best_step), self.step.weights(),
                                 allow_extra=True)

    def _start(self) -> Progress:
        ckpt.refuse_existing(self.checkpoints, self.output_dir)
        return Progress()

    def _resume(self) -> Progress:
        good = ckpt.latest_good(self.checkpoints, warn=self._say)
        if good is None:
            # What a scheduler's retry needs: the first attempt, or one that died before its first checkpoint.
            self.log.truncate_after(0)
            self._say(f"--resume: no checkpoint in {self.checkpoints} yet; starting the run from step 0")
            return Progress()
        progress = Progress(**ckpt.load_checkpoint(good, self.tensors))
        self.log.truncate_after(progress.step)
        self._say(f"resumed from {good} (step {progress.step})")
        return progress

    def _stop_requested(self, requests: StopRequests) -> int:
        """The signal that asked this run to stop (0 for none); data-parallel workers vote, so all agree."""
        requests.reinstall()
        signum = requests.signum or 0
        return self._any_rank(signum) if self._any_rank is not None else signum

    def _stop_on_signal(self, signum: int, progress: Progress, saved: bool):
        """Checkpoint the step just finished (unless it already was), then raise `TrainingInterrupted`."""
        if not saved:
            self._save(progress)
        if self._any_rank is not None:
            self._any_rank(0)  # wait until rank 0 has written it: a worker that exits ends the group
        checkpoint = self.checkpoints / ckpt.checkpoint_name(progress.step)
        self._say(f"{signal.Signals(signum).name}: stopped after step {progress.step}; saved {checkpoint}")
        raise TrainingInterrupted(signum, progress.step, checkpoint)

    def _say(self, message: str) -> None:
        if self.placement.is_main:
            tqdm.write(message)

    def _save(self, progress: Progress) -> None:
        if not self.placement.is_main:
            return
        ckpt.save_checkpoint(self.checkpoints, progress.step, self.tensors, asdict(progress))
        keep = {progress.best_step} if progress.best_step is not None else set()
        ckpt.prune(self.checkpoints, self.config.keep_last, keep)

    def _evaluate(self, progress: Progress) -> bool:
        """Evaluate, log, track the best; True when early stopping says stop."""
        metrics = self.evaluate()
        self.log.write({"step": progress.step, "split": "validation", **metrics})
        name = self.best_metric or next(iter(metrics))
        if name not in metrics:
            raise ConfigError(f"best_metric {name!r} is not among the validation metrics {sorted(metrics)}")
        progress.record(name, metrics[name])
        self._say(f"step {progress.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return 0 < self.config.patience <= progress.evals_without_improvement

    def _write_training_record(self, record: dict, bar) -> None:
        self.log.write(record)
        first = self.step.loss_names[0]
        bar.set_postfix({first: f"{record[first]:.4f}", "tok_s": f"{record['tokens_per_s']:.0f}"})
        if self.on_log is not None:
            self.on_log(record)

    def _watch_graph_memory(self, micro: Sequence[tuple]) -> None:
        """Warn once when the graphs compiled per batch length fill most of the machine's memory.

        On CPU each compiled graph keeps its own memory for the life of the process, so every new batch
        length adds its share; the warning comes before the next lengths run the process out of memory.
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


class _Window:
    """Loss parts, gradient norms and tokens since the last training record."""

    def __init__(self):
        self.losses, self.grad_norms, self.tokens, self.start = [], [], 0, time.perf_counter()

    def add(self, losses: dict, grad_norm: float, tokens: int) -> None:
        self.losses.append(losses)
        self.grad_norms.append(grad_norm)
        self.tokens += tokens

    def close(self, step: int, epoch: int, lr: float) -> dict:
        """The record of the window (means of each part), and a fresh window."""
        elapsed = time.perf_counter() - self.start
        record = {"step": step, "epoch": epoch, "lr": lr, "tokens_per_s": self.tokens / max(elapsed, 1e-9)}
        for name in self.losses[0]:
            record[name] = float(np.mean([losses[name] for losses in self.losses]))
        record["grad_norm"] = float(np.mean(self.grad_norms))
        self.__init__()
        return record
