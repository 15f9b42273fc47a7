"""The training recipe: one frozen dataclass whose defaults are the GPT-1 paper's fine-tuning recipe.

Pre-training lays its own defaults (`gptft.commands.pretrain.PRETRAIN_RECIPE`) over the same fields.
"""

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..model.config import LoRAConfig


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning recipe. Defaults are the GPT-1 paper's (Radford et al. 2018, Section 4.1)."""

    lr: float = 6.25e-5
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's moment decay rates."""
    eps: float = 1e-8
    """Adam's epsilon."""
    weight_decay: float = 0.01
    """Decoupled weight decay on matrices and embeddings (not on biases or layer-norm gains)."""
    batch_size: int = 32
    """Examples per optimizer step, over all micro-batches and all data-parallel workers."""
    grad_accum: int = 1
    """Micro-batches per optimizer step on each worker; the micro-batch is batch_size / (grad_accum * workers)."""
    epochs: int = 3
    """Passes over the training data."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: train all epochs); the schedule spans the shorter of the two."""
    warmup: float = 0.002
    """Linear warmup: a fraction of the optimizer steps when below 1 (paper, fine-tuning: 0.2%), else a
    number of steps (paper, pre-training: 2000)."""
    schedule: str = "linear"
    """After warmup: `linear` decay to 0 (fine-tuning) or `cosine` (pre-training)."""
    max_grad_norm: float = 1.0
    """Clip gradients to this global norm; 0 disables clipping."""
    lm_coef: float = 0.5
    """λ, the weight of the auxiliary LM loss; 0 trains on the task loss alone and skips the LM head."""
    classifier_dropout: float = 0.1
    """Dropout before the task head's linear layer."""
    seed: int = 42
    """Seeds weight initialisation, data order and dropout: the same seed gives the same run."""
    log_every: int = 10
    """Write a metrics.jsonl record every this many optimizer steps."""
    eval_every: int = 0
    """Evaluate on the validation split every this many steps; 0 evaluates after each epoch."""
    save_every: int = 0
    """Also checkpoint every this many steps (checkpoints are always written at each evaluation and at the end)."""
    keep_last: int = 2
    """Checkpoints kept besides the best one."""
    best_metric: str = ""
    """Validation metric that picks the best checkpoint; empty means the task's first metric."""
    patience: int = 0
    """Stop after this many evaluations without a better best_metric; 0 never stops early."""
    precision: str = "float32"
    """float32, or float16 (dynamic loss scaling) / bfloat16 on GPU and Ascend."""
    lora: LoRAConfig = LoRAConfig()
    """Low-rank adapters instead of training every weight (off at rank 0)."""
    dynamic_length: bool = False
    """Compile one graph for all batch lengths instead of one per length. On CPU every compiled graph keeps
    memory that grows with its batch's size for the life of the process, so many lengths add up; the one
    dynamic graph is compiled once, but its steps run slower (docs/performance-cpu.md#graph-memory)."""

    def __post_init__(self):
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")
        if not (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {self.betas}")
        for name in ("eps", "weight_decay", "max_grad_norm", "lm_coef"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "grad_accum", "epochs", "log_every", "keep_last"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        for name in ("max_steps", "eval_every", "save_every", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"train.{name} must be an integer >= 0, got {value!r}")
        if not self.warmup >= 0 or (self.warmup >= 1 and not float(self.warmup).is_integer()):
            raise ConfigError(f"train.warmup must be a fraction in [0, 1) or a whole number of steps, got {self.warmup}")
        if self.schedule not in ("linear", "cosine"):
            raise ConfigError(f"train.schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        if not 0 <= self.classifier_dropout < 1:
            raise ConfigError(f"train.classifier_dropout must be in [0, 1), got {self.classifier_dropout}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"train.grad_accum ({self.grad_accum}) must divide train.batch_size ({self.batch_size})")

    def warmup_steps(self, total_steps: int) -> int:
        """Warmup steps for a run of `total_steps`."""
        if self.warmup < 1:
            return math.ceil(self.warmup * total_steps)
        return min(int(self.warmup), total_steps)

    def micro_batch_size(self, world_size: int = 1) -> int:
        """Examples per forward pass on one worker."""
        per_step = self.grad_accum * world_size
        if self.batch_size % per_step:
            raise ConfigError(f"train.batch_size ({self.batch_size}) must be divisible by grad_accum x workers ({per_step})")
        return self.batch_size // per_step
