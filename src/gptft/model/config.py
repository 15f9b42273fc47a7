"""Model configuration: one frozen dataclass and the named presets.

Names follow nanoGPT (`n_layer`, `n_head`, `n_embd`, `block_size`, `vocab_size`); there is one name per
concept and no aliases. Derived values are properties, so a config never changes after it is built.
"""

from dataclasses import asdict, dataclass, fields, replace

from ..errors import ConfigError

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
        """A named configuration (`openai-gpt`, `gpt2`, `gpt2-medium`, `gpt2-large`, `tiny`), optionally with
        some fields changed."""
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


LORA_TARGETS = ("c_attn", "c_proj", "attn.c_proj", "c_fc", "mlp.c_proj")


@dataclass(frozen=True)
class LoRAConfig:
    """Low-rank adapters (LoRA, Hu et al. 2021): the backbone frozen, a small update trained beside some of its layers."""

    rank: int = 0
    """Rank of each adapter; 0 trains every weight (full fine-tuning, the paper's recipe)."""
    alpha: float = 16.0
    """The adapters' update is scaled by alpha / rank."""
    dropout: float = 0.0
    """Dropout on each adapter's input."""
    targets: tuple[str, ...] = ("c_attn", "attn.c_proj")
    """Layers that get adapters: c_attn (attention's query/key/value), attn.c_proj, c_fc, mlp.c_proj; c_proj is both projections."""

    def __post_init__(self):
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 0:
            raise ConfigError(f"train.lora.rank must be an integer >= 0, got {self.rank!r}")
        if not self.alpha > 0:
            raise ConfigError(f"train.lora.alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"train.lora.dropout must be in [0, 1), got {self.dropout}")
        unknown = [t for t in self.targets if t not in LORA_TARGETS]
        if unknown or not self.targets:
            raise ConfigError(f"train.lora.targets must name some of {', '.join(LORA_TARGETS)}; got "
                              f"{', '.join(self.targets) or 'none'}")


PRESETS = {
    # GPT-1 (Radford et al. 2018) as released on the Hugging Face hub: 40,478 tokens, 512 positions.
    "openai-gpt": GPTConfig(),
    # GPT-2 small (124M): pre-LN blocks with a final norm, 50,257 tokens, 1,024 positions.
    "gpt2": GPTConfig(vocab_size=50257, block_size=1024, layout="pre_ln"),
    # GPT-2 medium (355M) and large (774M): the same family, wider and deeper.
    "gpt2-medium": GPTConfig(vocab_size=50257, block_size=1024, n_embd=1024, n_layer=24, n_head=16, layout="pre_ln"),
    "gpt2-large": GPTConfig(vocab_size=50257, block_size=1024, n_embd=1280, n_layer=36, n_head=20, layout="pre_ln"),
    # For tests: small enough that a training step takes milliseconds.
    "tiny": GPTConfig(vocab_size=99, block_size=32, n_embd=32, n_layer=2, n_head=4),
}
