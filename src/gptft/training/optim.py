"""AdamW on MindSpore's fused kernel, and the learning-rate schedules of the GPT-1 paper.

`AdamW` is PyTorch's `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments), computed by
the fused `ops.AdamWeightDecay` kernel. That kernel has no bias correction, so it is folded into three
per-step scalars the caller passes in (`adam_scalars`): with lr_t = lr·sqrt(1-β2^t)/(1-β1^t) and
eps_t = eps·sqrt(1-β2^t), the kernel's `w -= lr_t·(m/(sqrt(v)+eps_t) + decay_t·w)` equals AdamW's
`w -= lr·wd·w + lr·m̂/(sqrt(v̂)+eps)` when decay_t = wd·lr/lr_t. It is exact like
`experimental.optim.AdamW` without that optimizer's compile time (docs/performance-cpu.md#optimizer).
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


_adam = ops.MultitypeFuncGraph("adam")


@_adam.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Bool", "Tensor",
                "Tensor", "Tensor", "Tensor")
def _adam_update(kernel, beta1, beta2, lr, eps, decay, zero, decayed, param, m, v, grad):
    kernel(param, m, v, lr, beta1, beta2, eps, decay if decayed else zero, grad)
    return True


class AdamW(nn.Cell):
    """Decoupled-weight-decay Adam over `params`; call it with the gradients and `adam_scalars(step, lr)`.

    The moments are parameters (`adam_m.*`, `adam_v.*`), so they are saved in and restored from
    training checkpoints with everything else.
    """

    def __init__(self, params, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__()
        self.params = ParameterTuple(params)
        self.m = self.params.clone(prefix="adam_m", init="zeros")
        self.v = self.params.clone(prefix="adam_v", init="zeros")
        self.betas = tuple(float(b) for b in betas)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.decayed = tuple(decays(p) for p in self.params)
        self.beta1 = Tensor(self.betas[0], ms.float32)
        self.beta2 = Tensor(self.betas[1], ms.float32)
        self.zero = Tensor(0.0, ms.float32)
        self.kernel = ops.AdamWeightDecay()
        self.map = ops.HyperMap()

    def scalars(self, step: int, lr: float) -> tuple[Tensor, Tensor, Tensor]:
        """The kernel's scalars for update `step` (1-based) at learning rate `lr`, as float32 tensors."""
        return tuple(Tensor(x, ms.float32) for x in adam_scalars(step, lr, self.betas, self.eps, self.weight_decay))

    def construct(self, grads, lr, eps, decay):
        return self.map(ops.partial(_adam, self.kernel, self.beta1, self.beta2, lr, eps, decay, self.zero),
                        self.decayed, self.params, self.m, self.v, grads)


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
