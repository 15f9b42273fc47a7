"""Model configuration: one frozen dataclass and the named presets.

Names follow nanoGPT (`n_layer`, `n_head`, `n_embd`, `block_size`, `vocab_size`); there is one name per
concept and no aliases. Derived values are properties, so a config never changes after it is built.
"""

import math
from dataclasses import asdict, dataclass, fields, replace

from .errors import ConfigError

LAYOUTS = ("post_ln", "pre_ln")
ACTIVATION_NAMES = ("gelu_new", "gelu")


@dataclass(frozen=True)
class GPTConfig:
    """Shape and behaviour of a GPT backbone."""

    vocab_size: int = 40478
    """Rows of the token embedding (and of the tied LM head), task tokens included."""
    block_size: int = 512
    """Number of learned positions: the longest sequence the model reads."""
    n_embd: int = 768
    """Width of the residual stream."""
    n_layer: int = 12
    """Number of transformer blocks."""
    n_head: int = 12
    """Attention heads per block; must divide `n_embd`."""
    n_inner: int | None = None
    """Width of the MLP's hidden layer; None means 4 * n_embd."""
    activation: str = "gelu_new"
    """`gelu_new` (tanh form, used by both GPT-1 and GPT-2) or `gelu` (exact, with erf)."""
    layer_norm_epsilon: float = 1e-5
    """Epsilon of every layer norm."""
    embd_pdrop: float = 0.1
    """Dropout on the summed token and position embeddings."""
    attn_pdrop: float = 0.1
    """Dropout on the attention probabilities."""
    resid_pdrop: float = 0.1
    """Dropout on each block's attention and MLP outputs."""
    layout: str = "post_ln"
    """`post_ln` (GPT-1: norm after each residual add, no final norm) or `pre_ln` (GPT-2, final `ln_f`)."""
    init_std: float = 0.02
    """Standard deviation of the normal initialisation of weights and embeddings (paper: N(0, 0.02))."""

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"model.n_head ({self.n_head}) must divide n_embd ({self.n_embd})")
        if self.n_inner is not None and (not isinstance(self.n_inner, int) or self.n_inner <= 0):
            raise ConfigError(f"model.n_inner must be a positive integer or None, got {self.n_inner!r}")
        if self.activation not in ACTIVATION_NAMES:
            raise ConfigError(f"model.activation must be one of {ACTIVATION_NAMES}, got {self.activation!r}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"model.layout must be one of {LAYOUTS}, got {self.layout!r}")
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {value!r}")
        if not self.layer_norm_epsilon > 0 or not self.init_std > 0:
            raise ConfigError("model.layer_norm_epsilon and init_std must be positive")

    @property
    def inner_size(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def preset(cls, name: str, **overrides) -> "GPTConfig":
        """A named configuration (`openai-gpt`, `gpt2`, `tiny`), optionally with some fields changed."""
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown GPTConfig key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**values)


PRESETS = {
    # GPT-1 (Radford et al. 2018) as released on the Hugging Face hub: 40,478 tokens, 512 positions.
    "openai-gpt": GPTConfig(),
    # GPT-2 small (124M): pre-LN blocks with a final norm, 50,257 tokens, 1,024 positions.
    "gpt2": GPTConfig(vocab_size=50257, block_size=1024, layout="pre_ln"),
    # For tests: small enough that a training step takes milliseconds.
    "tiny": GPTConfig(vocab_size=99, block_size=32, n_embd=32, n_layer=2, n_head=4),
}


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
    dynamic_length: bool = False
    """Compile one graph for all batch lengths instead of one per length. On CPU every static graph keeps
    the memory of all its intermediates, so many lengths of long sequences add up past the machine's
    memory; the one dynamic graph needs about that of the longest batch, but trains slower."""

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
