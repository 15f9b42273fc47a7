"""AdamW on MindSpore's `Adam` kernel, and the learning-rate schedules of the GPT-1 paper.

`AdamW` is PyTorch's `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments). Each decayed
parameter is first shrunk by `ApplyGradientDescent(p, lr·wd, p)` (p -= lr·wd·p, the decoupled decay), then
updated by MindSpore's `Adam` kernel, which applies the bias correction itself from β1^t and β2^t: its
`p -= lr·sqrt(1-β2^t)/(1-β1^t) · m/(sqrt(v)+ε)` equals AdamW's `p -= lr·m̂/(sqrt(v̂)+eps)` when
ε = eps·sqrt(1-β2^t), which `adam_scalars` passes. This pair is faster on CPU than the fused
`AdamWeightDecay` kernel (docs/performance-cpu.md#optimizer).
The updates run outside the gradient graph, one small graph call per segment of the parameters (a
numbered layer's, or the rest, see `segments`); segments of the same shapes share one compiled graph, so
a 12-block model compiles two update graphs, not one of 148 updates (docs/performance-cpu.md#compile-time).
"""

import math
import re

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
from mindspore.common.dtype import dtype_to_nptype


def decays(param: Parameter) -> bool:
    """Weight decay applies to matrices and embeddings, not to biases or layer-norm gains (paper, 4.1)."""
    return len(param.shape) >= 2


def adam_scalars(step: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
    """(β1^t, β2^t, lr, ε_t, lr·wd) for update number `step` (1-based) at learning rate `lr`: what the
    `Adam` kernel and the decay take, with ε_t = eps·sqrt(1-β2^t) so that the kernel's ε lands where
    AdamW's does (added to the bias-corrected sqrt(v̂))."""
    beta1, beta2 = betas
    return beta1**step, beta2**step, lr, eps * math.sqrt(1.0 - beta2**step), lr * weight_decay


# The most parameters in one update segment (and so in one norm graph, see `TrainStep`).
GROUP_SIZE = 150


def _layer(name: str) -> str | None:
    """The path of the numbered layer a parameter belongs to (`model.backbone.h.3` for
    `model.backbone.h.3.attn.c_attn.weight`), or None for a parameter outside any numbered layer."""
    match = re.match(r"(.*?(?:^|\.)\d+)(?:\.|$)", name)
    return match.group(1) if match else None


def segments(params, most: int = GROUP_SIZE) -> list[list[int]]:
    """The indices of `params` in update segments: one per numbered layer (`h.0`, `h.1`, ...), in order,
    after one for every parameter outside them (the embeddings, a final norm, the head); none longer
    than `most`. A model's repeated layers give segments of the same shapes, which share one graph.
    """
    layers = {}
    for i, param in enumerate(params):
        layers.setdefault(_layer(param.name), []).append(i)
    rest = layers.pop(None, [])
    return [group[at:at + most] for group in (rest, *layers.values()) for at in range(0, len(group), most)]


class AdamW:
    """Decoupled-weight-decay Adam over `params`, applied segment by segment (see `segments`).

    `apply(grads, scalars, scale)` updates every parameter with `scale * grad` (the clipping factor);
    `scalars(step, lr)` are the update's per-step scalars. The moments are parameters (`adam_m.*`,
    `adam_v.*`), so training checkpoints save and restore them with everything else.
    """

    def __init__(self, params, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01,
                 group_size: int = GROUP_SIZE):
        self.params = ParameterTuple(params)
        self.m = _zeros_like(self.params, "adam_m")
        self.v = _zeros_like(self.params, "adam_v")
        self.betas = tuple(float(b) for b in betas)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.group_size = group_size
        self.segments = segments(self.params, group_size)
        self.updates = {}  # (scaled, shapes, decayed) -> the update cell serving every segment like that

    def scalars(self, step: int, lr: float) -> tuple[Tensor, ...]:
        """The update's scalars for update `step` (1-based) at learning rate `lr` (see `adam_scalars`), as
        float32 tensors."""
        return tuple(Tensor(x, ms.float32) for x in adam_scalars(step, lr, self.betas, self.eps, self.weight_decay))

    def apply(self, grads, scalars, scale=None) -> None:
        """One update of every parameter with `grads` (in `params` order), times `scale` if given."""
        extra = () if scale is None else (scale,)
        compiled = ms.get_context("mode") == ms.GRAPH_MODE
        for segment in self.segments:
            params = [self.params[i] for i in segment]
            decayed = tuple(decays(p) for p in params)
            key = (scale is not None, tuple(tuple(p.shape) for p in params), decayed)
            if key not in self.updates:
                self.updates[key] = _Update(self.betas, decayed, scale is not None)
            state = (*params, *(self.m[i] for i in segment), *(self.v[i] for i in segment))
            if compiled:
                # Tensors over the parameters' own memory, which the kernel updates in place: passed as
                # Parameters, each segment would compile its own graph. Not in PyNative, which compiles
                # nothing, and where reading a parameter would not wait for the work queued on a view of it.
                state = [Tensor(x) for x in state]
            self.updates[key](*scalars, *extra, *state, *(grads[i] for i in segment))

    def compile_cache_sizes(self) -> list[int]:
        """Graphs compiled by each update cell (one each, whatever the batch shapes)."""
        return [len(cell.compile_cache) for cell in self.updates.values()]


def _zeros_like(params, prefix: str) -> ParameterTuple:
    """Zero-filled copies of `params` named `{prefix}.{name}`, holding their memory from the start: moments
    made by `clone(init="zeros")` are filled in on first use, which made the first update several times
    slower than the next (docs/performance-cpu.md#optimizer)."""
    return ParameterTuple(Parameter(Tensor(np.zeros(p.shape, dtype_to_nptype(p.dtype))), name=f"{prefix}.{p.name}")
                          for p in params)


class _Update(nn.Cell):
    """The decoupled decay and the `Adam` kernel on one segment's parameters, moments and gradients, in one graph."""

    def __init__(self, betas, decayed: tuple, scaled: bool):
        super().__init__()
        self.decayed, self.scaled = decayed, scaled
        self.beta1 = Tensor(betas[0], ms.float32)
        self.beta2 = Tensor(betas[1], ms.float32)
        self.adam = ops.Adam()
        self.descent = ops.ApplyGradientDescent()

    def construct(self, beta1_power, beta2_power, lr, eps, decay, *rest):
        scale, rest = (rest[0], rest[1:]) if self.scaled else (None, rest)
        n = len(self.decayed)
        params, m, v, grads = rest[:n], rest[n:2 * n], rest[2 * n:3 * n], rest[3 * n:]
        for i in range(n):
            grad = grads[i] if scale is None else grads[i] * scale
            param = params[i]
            if self.decayed[i]:
                # `depend` orders the two in-place updates of the same memory: the decay reads p first.
                param = ops.depend(param, self.descent(param, decay, param))
            self.adam(param, m[i], v[i], beta1_power, beta2_power, lr, self.beta1, self.beta2, eps, grad)
        return lr


def linear_warmup_linear_decay(step: int, total_steps: int, warmup_steps: int) -> float:
    """Fine-tuning schedule (paper 4.1): linear warmup to 1, then linear decay to 0 at `total_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return step / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def linear_warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Pre-training schedule (paper 4.1): linear warmup to 1, then cosine annealing to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES = {"linear": linear_warmup_linear_decay, "cosine": linear_warmup_cosine}
