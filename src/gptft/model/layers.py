"""Small building blocks shared by the backbone and the task heads.

`Dropout` here is stateless by design: its mask is a hash of (site key, call count, element index), and
the call count is a `Parameter`, so it is saved in training checkpoints. MindSpore's own random kernels
keep their generator state inside the kernel, where neither `mindspore.get_rng_state` nor a checkpoint
can reach it, so a run resumed from a checkpoint would draw different masks; with this cell it draws the
same ones. The mask is either computed inside the graph or drawn on the host (`Dropout.draw`) and passed
in: the same mask either way, but the host's costs the graph a single multiply instead of a hash chain
over every element. The CPU-specific operator choices below are measured in docs/performance-cpu.md.
"""

import itertools
import math
import zlib

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

# Hash constants, used in uint32 so products wrap modulo 2**32 and shifts are logical. The per-call seed
# gets the full "lowbias32" mix (it is one number); each element gets one xor-shift-multiply round, whose
# masks are as good as the full mix's (docs/performance-cpu.md#dropout).
_MUL_A = 0x9E3779B1  # the golden-ratio multiplier
_MUL_B = 0x7FEB352D
_MUL_C = 0x846CA68B
_MUL_D = 0x85EBCA77

_U_MUL_A, _U_MUL_B, _U_MUL_C, _U_MUL_D = (Tensor(np.uint32(c)) for c in (_MUL_A, _MUL_B, _MUL_C, _MUL_D))
_SHIFT_15, _SHIFT_16 = Tensor(np.uint32(15)), Tensor(np.uint32(16))

# Each Dropout cell takes the next key, so cells built in the same order draw the same masks.
_site_keys = itertools.count(1)

_TWO_SQRT_2_OVER_PI = 2.0 * math.sqrt(2.0 / math.pi)


def mix32(value):
    """A full 32-bit integer hash on NumPy uint32 values (for the per-call seeds and the site keys)."""
    value = np.asarray(value, np.uint32)
    with np.errstate(over="ignore"):  # wrapping modulo 2**32 is the point
        value = (value ^ (value >> np.uint32(16))) * np.uint32(_MUL_B)
        value = (value ^ (value >> np.uint32(15))) * np.uint32(_MUL_C)
    return value ^ (value >> np.uint32(16))


def keep_mask(key: int, call: int, size: int, p: float) -> np.ndarray:
    """The mask `Dropout` draws on call number `call` (0-based) for `size` elements, computed in NumPy.

    This is the specification the compiled cell is tested against.
    """
    with np.errstate(over="ignore"):
        seed = mix32(np.uint32(call) * np.uint32(_MUL_A) + np.uint32(key))
        h = _indices(size) ^ seed  # a new array; the rest works in place, as the host draws every step
        h *= np.uint32(_MUL_A)
        h ^= h >> np.uint32(15)
        h *= np.uint32(_MUL_D)
    return h < np.uint32(_threshold(p))


_index_table = np.arange(0, dtype=np.uint32)


def _indices(size: int) -> np.ndarray:
    """`np.arange(size, dtype=uint32)`, as a view of one table grown to the largest size asked for."""
    global _index_table
    if size > len(_index_table):
        _index_table = np.arange(size, dtype=np.uint32)
    return _index_table[:size]


def _threshold(p: float) -> int:
    # An element is kept when its 32-bit hash falls below (1 - p) * 2**32.
    return min(int(round((1.0 - p) * 2**32)), 2**32 - 1)


class Dropout(nn.Cell):
    """Inverted dropout whose random state lives in checkpointable parameters.

    Every training call uses a fresh mask and advances `calls` by one; evaluation (``set_train(False)``)
    is the identity and draws nothing. Called as `drop(x)` the mask is hashed inside the graph; called as
    `drop(x, keep)` it is `keep`, a boolean array of x's shape that `drop.draw(x.shape)` made on the host
    (and counted). Both give the mask `keep_mask` specifies. Restoring `key` and `calls` from a checkpoint
    continues the same sequence of masks; `seed_dropout` sets the keys from a run's seed.

    Args:
        p: probability of zeroing an element, in ``[0, 1)``.
        select: apply a host-made mask with `select` instead of multiplying by it, with the same values and
            gradients bit for bit: the gradient graph then keeps the boolean mask for the backward pass
            rather than a float copy of it. That pays for large masks (the attention probabilities',
            `(B, n_head, T, T)`); on `(B * T, C)` masks the extra graph nodes cost more memory than it saves
            (docs/performance-cpu.md#graph-memory).
    """

    def __init__(self, p: float, select: bool = False):
        super().__init__()
        self.select = select
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.scale = 1.0 / (1.0 - self.p)
        self.threshold = Tensor(np.uint32(_threshold(self.p)))
        self.key = Parameter(Tensor(_as_int32(mix32(next(_site_keys) * _MUL_A % (1 << 32)))), name="key",
                             requires_grad=False)
        # Shape (1,), not a scalar: MindSpore reports a 0-d parameter as (1,) once a graph has assigned it.
        self.calls = Parameter(Tensor(np.zeros(1, np.int32)), name="calls", requires_grad=False)

    @staticmethod
    def _mix(h):
        h = ops.bitwise_xor(h, ops.bitwise_right_shift(h, _SHIFT_16)) * _U_MUL_B
        h = ops.bitwise_xor(h, ops.bitwise_right_shift(h, _SHIFT_15)) * _U_MUL_C
        return ops.bitwise_xor(h, ops.bitwise_right_shift(h, _SHIFT_16))

    def draw(self, shape, advance: bool = True) -> np.ndarray:
        """The boolean keep mask of this cell's next training call on a tensor of `shape`, drawn on the host,
        and the call counted (unless not `advance`). A cell that drops nothing (p = 0) gets a one-element
        placeholder it never reads."""
        if self.p == 0.0:
            return np.ones(1, np.bool_)
        key = int(self.key.asnumpy().view(np.uint32)[0])
        call = int(self.calls.asnumpy()[0])
        if advance:
            self.calls.set_data(Tensor(np.array([call + 1], np.int32)))
        return keep_mask(key, call, int(np.prod(shape)), self.p).reshape(shape)

    def construct(self, x, keep=None):
        if not self.training or self.p == 0.0:
            return x
        if keep is not None:
            if self.select:
                return ops.select(keep, x * self.scale, ops.zeros_like(x))
            return x * keep.astype(x.dtype) * self.scale
        seed = self._mix(self.calls.astype(ms.uint32) * _U_MUL_A + self.key.astype(ms.uint32))
        ops.assign_add(self.calls, ops.ones((1,), ms.int32))
        h = ops.bitwise_xor(ops.arange(0, x.size, dtype=ms.uint32).reshape(x.shape), seed) * _U_MUL_A
        h = ops.bitwise_xor(h, ops.bitwise_right_shift(h, _SHIFT_15)) * _U_MUL_D
        return x * ((h < self.threshold).astype(x.dtype) * self.scale)


class Linear(nn.Cell):
    """`y = x W^T + b` with W stored `(out, in)`, over any leading shape.

    The bias is an add rather than `BiasAdd`, whose CPU gradient kernel is slow, and the product is
    `x @ W^T` rather than `x @ W` (docs/performance-cpu.md#operators). The bias is broadcast explicitly:
    an implicit broadcast in a compiled gradient graph keeps memory that grows with the batch for the life
    of the process, `broadcast_to` does not, with the same values and gradients bit for bit
    (docs/performance-cpu.md#graph-memory).
    """

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.weight = Parameter(weight, name="weight")
        self.bias = Parameter(bias, name="bias")
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, x):
        flat = self.matmul(x.reshape(-1, x.shape[-1]), self.weight)
        flat = flat + ops.broadcast_to(self.bias, flat.shape)
        return flat.reshape(x.shape[:-1] + (-1,))


def named_parameters(cell: nn.Cell, weights_only: bool = False) -> dict:
    """`{path: Parameter}` by the cell tree (e.g. `h.0.attn.c_attn.weight`), in definition order;
    `weights_only` leaves out the dropout cells' random state (their key and call count).

    MindSpore rewrites `Parameter.name` whenever a cell is nested in another (a GPT inside a task model
    inside a train step reads `accumulate_cell.gradients.loss_cell.model.backbone.wte.weight`), so files
    are keyed by these structural paths instead.
    """
    named = {}
    for path, sub in cell.cells_and_names():
        if weights_only and isinstance(sub, Dropout):
            continue
        for attr, param in sub._params.items():  # the Parameters a cell holds as attributes
            if param is not None:
                named.setdefault(f"{path}.{attr}" if path else attr, param)
    return named


def fit_problems(params: dict, shapes: dict, allow_extra: bool = False) -> list[str]:
    """What keeps saved tensors of `shapes` (`{name: shape tuple}`) from filling `params` (`{name: Parameter}`):
    each missing or mis-shaped tensor, and each unexpected one unless `allow_extra`. Empty when they fit."""
    problems = [f"missing {name}" for name in params if name not in shapes]
    problems += [f"{name} has shape {shapes[name]}, expected {tuple(p.shape)}"
                 for name, p in params.items() if name in shapes and shapes[name] != tuple(p.shape)]
    if not allow_extra:
        problems += [f"unexpected {name}" for name in shapes if name not in params]
    return problems


def attached_cell(model: nn.Cell, make) -> nn.Cell:
    """The cell `make(model)` built once per model and kept on it, so its compiled graphs serve every later
    call (generation, zero-shot scoring). Kept outside MindSpore's cell registry: registered, it would make
    the model its own descendant."""
    cells = model.__dict__.setdefault("_attached_cells", {})
    if make not in cells:
        cells[make] = make(model)
    return cells[make]


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
    On CPU the row means are matrix products with a `(n, 1)` averaging vector and the rest element-wise,
    faster than MindSpore's `LayerNorm` CPU kernels (docs/performance-cpu.md#operators), with every
    broadcast explicit, as in `Linear`. Other devices use the fused kernel.
    """

    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(n, np.float32)), name="weight")
        self.bias = Parameter(Tensor(np.zeros(n, np.float32)), name="bias")
        self.eps = eps
        self.fused = ms.get_context("device_target") != "CPU"
        self.norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)
        self.average = Tensor(np.full((n, 1), 1.0 / n, np.float32))
        self.matmul = ops.MatMul()

    def construct(self, x):
        if self.fused:
            return self.norm(x, self.weight, self.bias)[0]
        flat = x.reshape(-1, x.shape[-1])
        centred = flat - ops.broadcast_to(self.matmul(flat, self.average), flat.shape)  # minus row means
        variance = self.matmul(centred * centred, self.average)  # (N, 1)
        # One (N, C) factor, each row's 1/std times the weight (a product of one term per element, so
        # exact), rather than two broadcast multiplies: the gradient graph keeps two (N, C) tensors per
        # norm instead of four, and runs faster (docs/performance-cpu.md#graph-memory).
        scale = self.matmul(ops.rsqrt(variance + self.eps), self.weight.reshape(1, -1))
        return (centred * scale + ops.broadcast_to(self.bias, flat.shape)).reshape(x.shape)


def gelu_tanh(x):
    """GELU in its tanh form (GPT-1 and GPT-2 both use it; Hugging Face calls it `gelu_new`).

    Computed as ``x * sigmoid(2z)``, which equals ``0.5 * x * (1 + tanh(z))``: MindSpore's CPU `tanh` is
    off by up to 1e-4 (tanh(-5) = -1.0000098), its `sigmoid` by under 1e-6. Element-wise rather than the
    `GeLU` kernel, which is slower inside compiled CPU graphs (docs/performance-cpu.md#operators). The
    cubic is written `x * (1 + 0.044715 x^2)`: its gradient graph keeps three tensors of x's size instead
    of the four of `x + 0.044715 x x x`, at about the same speed (docs/performance-cpu.md#graph-memory).
    """
    return x * ops.sigmoid(_TWO_SQRT_2_OVER_PI * (x * (1.0 + 0.044715 * ops.square(x))))


def gelu_exact(x):
    """GELU with the error function: ``x * Phi(x)``."""
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


ACTIVATIONS = {"gelu_new": gelu_tanh, "gelu": gelu_exact}
