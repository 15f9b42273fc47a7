"""Small building blocks shared by the backbone and the task heads.

`Dropout` here is stateless by design: its mask is a hash of (site key, call count, element index), and
the call count is a `Parameter`, so it is saved in training checkpoints. MindSpore's own random kernels
keep their generator state inside the kernel, where neither `mindspore.get_rng_state` nor a checkpoint
can reach it (measured on MindSpore 2.7 CPU: restoring the RNG state does not repeat a dropout mask), so
a run resumed from a checkpoint would draw different masks. With this cell it draws the same ones.
"""

import itertools
import math
import zlib

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

# Constants of a 32-bit integer hash (multiply / xor-shift rounds, the "lowbias32" family), computed in
# uint32 so products wrap modulo 2**32 and shifts are logical.
_MUL_A = 0x9E3779B1  # the golden-ratio multiplier
_MUL_B = 0x7FEB352D
_MUL_C = 0x846CA68B
_MASK_24 = (1 << 24) - 1

_U_MUL_A, _U_MUL_B, _U_MUL_C = (Tensor(np.uint32(c)) for c in (_MUL_A, _MUL_B, _MUL_C))
_U_MASK_24 = Tensor(np.uint32(_MASK_24))
_SHIFT_15, _SHIFT_16 = Tensor(np.uint32(15)), Tensor(np.uint32(16))

# Each Dropout cell takes the next key, so cells built in the same order draw the same masks.
_site_keys = itertools.count(1)

_TWO_SQRT_2_OVER_PI = 2.0 * math.sqrt(2.0 / math.pi)


def mix32(value):
    """The hash `Dropout` uses, on NumPy uint32 arrays (for keys here, and for tests to check masks)."""
    value = np.asarray(value, np.uint32)
    with np.errstate(over="ignore"):  # wrapping modulo 2**32 is the point
        value = (value ^ (value >> np.uint32(16))) * np.uint32(_MUL_B)
        value = (value ^ (value >> np.uint32(15))) * np.uint32(_MUL_C)
    return value ^ (value >> np.uint32(16))


class Dropout(nn.Cell):
    """Inverted dropout whose random state lives in a checkpointable parameter.

    Every training call draws a fresh mask and advances `calls` by one; evaluation (``set_train(False)``)
    is the identity and draws nothing. Two cells built in the same order in two processes draw the same
    masks, and restoring `calls` from a checkpoint continues the same sequence.

    Args:
        p: probability of zeroing an element, in ``[0, 1)``.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.scale = 1.0 / (1.0 - self.p)
        # An element is kept when 24 bits of its hash fall below this threshold.
        self.threshold = Tensor(np.uint32(round((1.0 - self.p) * (1 << 24))))
        self.key = Parameter(Tensor(_as_int32(mix32(next(_site_keys) * _MUL_A % (1 << 32)))), name="key",
                             requires_grad=False)
        # Shape (1,), not a scalar: MindSpore reports a 0-d parameter as (1,) once a graph has assigned it.
        self.calls = Parameter(Tensor(np.zeros(1, np.int32)), name="calls", requires_grad=False)

    @staticmethod
    def _hash(h):
        # Two xor-shift-multiply rounds (as `mix32`): neighbouring elements come out independent.
        h = ops.bitwise_xor(h, ops.bitwise_right_shift(h, _SHIFT_16)) * _U_MUL_B
        h = ops.bitwise_xor(h, ops.bitwise_right_shift(h, _SHIFT_15)) * _U_MUL_C
        return ops.bitwise_xor(h, ops.bitwise_right_shift(h, _SHIFT_16))

    def construct(self, x):
        if not self.training or self.p == 0.0:
            return x
        seed = self._hash(self.calls.astype(ms.uint32) * _U_MUL_A + self.key.astype(ms.uint32))
        ops.assign_add(self.calls, ops.ones((1,), ms.int32))
        index = ops.arange(0, x.size, dtype=ms.uint32).reshape(x.shape)
        bits = ops.bitwise_and(self._hash(ops.bitwise_xor(index * _U_MUL_A, seed)), _U_MASK_24)
        keep = (bits < self.threshold).astype(x.dtype)
        return x * keep * self.scale


def named_parameters(cell: nn.Cell, trainable_only: bool = False) -> dict:
    """`{path: Parameter}` by the cell tree (e.g. `h.0.attn.c_attn.weight`), in definition order.

    MindSpore rewrites `Parameter.name` whenever a cell is nested in another (a GPT inside a task model
    inside a train step reads `accumulate_cell.gradients.loss_cell.model.backbone.wte.weight`), so files
    are keyed by these structural paths instead.
    """
    named = {}
    for path, sub in cell.cells_and_names():
        for attr, param in sub._params.items():  # the Parameters a cell holds as attributes
            if param is not None and (param.requires_grad or not trainable_only):
                named.setdefault(f"{path}.{attr}" if path else attr, param)
    return named


def _as_int32(value) -> np.ndarray:
    """A uint32 hash as a one-element int32 array (same bits), the dtype parameters are saved in."""
    return np.asarray(value, np.uint32).reshape(1).view(np.int32)


def seed_dropout(cell: nn.Cell, seed: int) -> None:
    """Give every `Dropout` under `cell` a key from `seed` and its path, and reset its call count.

    Keys then depend on the run's seed and the model's structure only, so two runs with one seed draw
    the same masks, in one process or two, whatever else was built before.
    """
    for path, sub in cell.cells_and_names():
        if isinstance(sub, Dropout):
            key = mix32(np.uint32(zlib.crc32(path.encode())) ^ mix32(np.uint32(seed % (1 << 32))))
            sub.key.set_data(Tensor(_as_int32(key)))
            sub.calls.set_data(Tensor(np.zeros(1, np.int32)))


class LayerNorm(nn.Cell):
    """Layer normalisation over the last axis, with parameters named `weight` and `bias`.

    `nn.LayerNorm` calls them `gamma`/`beta`; these names keep the weight table with Hugging Face short.
    """

    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(n, np.float32)), name="weight")
        self.bias = Parameter(Tensor(np.zeros(n, np.float32)), name="bias")
        self.norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        return self.norm(x, self.weight, self.bias)[0]


def gelu_tanh(x):
    """GELU in its tanh form (GPT-1 and GPT-2 both use it; Hugging Face calls it `gelu_new`).

    Computed as ``x * sigmoid(2z)``, which equals ``0.5 * x * (1 + tanh(z))``: MindSpore's CPU `tanh` is
    off by up to 1e-4 (tanh(-5) = -1.0000098), its `sigmoid` by under 1e-6. Element-wise rather than the
    `GeLU` kernel because inside compiled graphs that ran about 3x faster (../shared/MINDSPORE_CPU.md).
    """
    return x * ops.sigmoid(_TWO_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))


def gelu_exact(x):
    """GELU with the error function: ``x * Phi(x)``."""
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


ACTIVATIONS = {"gelu_new": gelu_tanh, "gelu": gelu_exact}
