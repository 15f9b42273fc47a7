"""AdamW on MindSpore's fused kernel, and the learning-rate schedules of the GPT-1 paper.

`AdamW` is PyTorch's `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments), computed by
the fused `ops.AdamWeightDecay` kernel. That kernel has no bias correction, so it is folded into three
per-step scalars the caller passes in (`adam_scalars`): with lr_t = lr·sqrt(1-β2^t)/(1-β1^t) and
eps_t = eps·sqrt(1-β2^t), the kernel's `w -= lr_t·(m/(sqrt(v)+eps_t) + decay_t·w)` equals AdamW's
`w -= lr·wd·w + lr·m̂/(sqrt(v̂)+eps)` when decay_t = wd·lr/lr_t. It is exact like
`experimental.optim.AdamW` without that optimizer's compile time (docs/performance-cpu.md#optimizer).
The updates run outside the gradient graph, in small graphs of a few dozen parameters each.
"""

import math

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops


def decays(param: Parameter) -> bool:
    """Weight decay applies to matrices and embeddings, not to biases or layer-norm gains (paper, 4.1)."""
    return len(param.shape) >= 2


def adam_scalars(step: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
    """(lr_t, eps_t, decay_t) for update number `step` (1-based) at learning rate `lr`."""
    beta1, beta2 = betas
    correction2 = math.sqrt(1.0 - beta2**step)
    lr_t = lr * correction2 / (1.0 - beta1**step)
    decay_t = weight_decay * lr / lr_t if lr_t > 0 else 0.0
    return lr_t, eps * correction2, decay_t


# Parameters per update graph: GPT-1's 148 in one; larger models get a few graphs of this size, which each
# compile in seconds (docs/performance-cpu.md#compile-time).
GROUP_SIZE = 150


class AdamW:
    """Decoupled-weight-decay Adam over `params`, applied by one small compiled graph per group of them.

    `apply(grads, scalars, scale)` updates every parameter with `scale * grad` (the clipping factor);
    `scalars(step, lr)` are the kernel's per-step scalars. The moments are parameters (`adam_m.*`,
    `adam_v.*`), so training checkpoints save and restore them with everything else.
    """

    def __init__(self, params, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01,
                 group_size: int = GROUP_SIZE):
        self.params = ParameterTuple(params)
        self.m = self.params.clone(prefix="adam_m", init="zeros")
        self.v = self.params.clone(prefix="adam_v", init="zeros")
        self.betas = tuple(float(b) for b in betas)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.group_size = group_size
        self.groups = {}  # scaled or not -> the update cells, built on first use

    def scalars(self, step: int, lr: float) -> tuple[Tensor, Tensor, Tensor]:
        """The kernel's scalars for update `step` (1-based) at learning rate `lr`, as float32 tensors."""
        return tuple(Tensor(x, ms.float32) for x in adam_scalars(step, lr, self.betas, self.eps, self.weight_decay))

    def apply(self, grads, scalars, scale=None) -> None:
        """One update of every parameter with `grads` (in `params` order), times `scale` if given."""
        scaled = scale is not None
        if scaled not in self.groups:
            n = len(self.params)
            self.groups[scaled] = [_Update(self, start, min(start + self.group_size, n), scaled)
                                   for start in range(0, n, self.group_size)]
        extra = (scale,) if scaled else ()
        for group in self.groups[scaled]:
            group(*scalars, *extra, *grads[group.start:group.stop])

    def compile_cache_sizes(self) -> list[int]:
        """Graphs compiled by each update cell (one each, whatever the batch shapes)."""
        return [len(group.compile_cache) for groups in self.groups.values() for group in groups]


class _Update(nn.Cell):
    """The fused `AdamWeightDecay` kernel on parameters `start:stop` of an `AdamW`, one graph."""

    def __init__(self, optimizer: AdamW, start: int, stop: int, scaled: bool):
        super().__init__()
        self.start, self.stop, self.scaled = start, stop, scaled
        self.params = ParameterTuple(list(optimizer.params)[start:stop])
        self.m = ParameterTuple(list(optimizer.m)[start:stop])
        self.v = ParameterTuple(list(optimizer.v)[start:stop])
        self.decayed = tuple(decays(p) for p in self.params)
        self.beta1 = Tensor(optimizer.betas[0], ms.float32)
        self.beta2 = Tensor(optimizer.betas[1], ms.float32)
        self.zero = Tensor(0.0, ms.float32)
        self.kernel = ops.AdamWeightDecay()

    def construct(self, lr, eps, decay, *scale_and_grads):
        scale, grads = (scale_and_grads[0], scale_and_grads[1:]) if self.scaled else (None, scale_and_grads)
        for param, m, v, grad, decayed in zip(self.params, self.m, self.v, grads, self.decayed):
            if scale is not None:
                grad = grad * scale
            self.kernel(param, m, v, lr, self.beta1, self.beta2, eps, decay if decayed else self.zero, grad)
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
