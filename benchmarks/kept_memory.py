"""What a compiled gradient graph keeps for the backward pass, per operator form, in tensors of its input's size.

    python benchmarks/kept_memory.py                 # every form, depths 2 and 6
    python benchmarks/kept_memory.py --forms softmax exp_log_softmax

Each form is applied `depth` times in a chain (`x = op(x)`, every layer norm with its own weight and
bias) and compiled in GRAPH_MODE as the gradient of `sum(chain(x * w))` with respect to the parameters.
Each (form, depth) runs in its own process, which prints its resident set before and after the first run
of the compiled graph. What a process keeps for the backward pass grows with the depth; the difference
between the two depths, over the depth difference and the input's size, is how many tensors of its size
one op keeps. The same difference of what compiling the graph left resident is how many such tensors one
op holds from compiling on (constants MindSpore folds, such as a `zeros_like` of a static shape). The
median time of a forward and backward pass is printed beside them.

The forms: MindSpore's `Softmax` against `exp(log_softmax)` (gptft's attention probabilities in training)
on GPT-1's attention scores at 512 tokens, batch 2; the tanh GELU as gptft wrote it before
(`x + 0.044715 x x x`) against `layers.gelu_tanh`; the CPU layer norm as gptft wrote it before (two
broadcast multiplies) against `layers.LayerNorm`; zeroing where a mask is false (the attention dropout's
`select` with a host-made mask) with `zeros_like` (gptft's), with zeros made from the input, with a
scalar zero, `masked_fill` and a float mask product, on the attention scores' shape.
docs/performance-cpu.md#graph-memory quotes the results.
"""

import argparse
import ctypes
import json
import subprocess
import sys
import time

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from graph_memory import rss_gb
from gptft.model.layers import _TWO_SQRT_2_OVER_PI, LayerNorm, gelu_tanh

SHAPES = {"scores": (2, 12, 512, 512), "mlp": (4096, 3072), "rows": (8192, 768)}
FORMS = {  # name: the shape it runs on
    "softmax": "scores", "exp_log_softmax": "scores",
    "gelu_cubed": "mlp", "gelu_tanh": "mlp",
    "layer_norm_broadcasts": "rows", "layer_norm": "rows",
    "select_zeros_like": "scores", "select_product_zero": "scores", "select_scalar_zero": "scores",
    "masked_fill": "scores", "mask_product": "scores",
}


class BroadcastLayerNorm(LayerNorm):
    """gptft's CPU layer norm before it folded the weight into one (N, C) factor."""

    def construct(self, x):
        centred = x - ops.broadcast_to(self.matmul(x, self.average), x.shape)
        variance = self.matmul(centred * centred, self.average)
        normed = centred * ops.broadcast_to(ops.rsqrt(variance + self.eps), x.shape)
        return normed * ops.broadcast_to(self.weight, x.shape) + ops.broadcast_to(self.bias, x.shape)


def softmax(x):
    return ops.softmax(x, axis=-1)


def exp_log_softmax(x):
    return ops.exp(ops.log_softmax(x, axis=-1))


def gelu_cubed(x):
    """gptft's tanh GELU before it wrote the cubic as x (1 + 0.044715 x^2)."""
    return x * ops.sigmoid(_TWO_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))


def select_zeros_like(x):
    return ops.select(x > 0, x, ops.zeros_like(x))


def select_product_zero(x):
    """Zeros made from the input when needed instead of folded (tried for the dropout and not kept)."""
    return ops.select(x > 0, x, ops.stop_gradient(x) * 0.0)


def select_scalar_zero(x):
    return ops.select(x > 0, x, 0.0)


def masked_fill(x):
    return ops.masked_fill(x, x <= 0, 0.0)


def mask_product(x):
    return x * (x > 0).astype(x.dtype)


FUNCTIONS = {"softmax": softmax, "exp_log_softmax": exp_log_softmax, "gelu_cubed": gelu_cubed, "gelu_tanh": gelu_tanh,
             "select_zeros_like": select_zeros_like, "select_product_zero": select_product_zero,
             "select_scalar_zero": select_scalar_zero, "masked_fill": masked_fill, "mask_product": mask_product}
NORMS = {"layer_norm_broadcasts": BroadcastLayerNorm, "layer_norm": LayerNorm}


class Chain(nn.Cell):
    """`form` applied `depth` times to `x * w`, summed: every layer norm with its own weight and bias."""

    def __init__(self, form: str, depth: int):
        super().__init__()
        self.w = Parameter(Tensor(np.float32(1.01)), name="w")
        self.depth = depth
        self.function = FUNCTIONS.get(form)
        norm = NORMS.get(form)
        self.norms = nn.CellList([norm(SHAPES["rows"][-1], 1e-5) for _ in range(depth)] if norm else [])

    def construct(self, x):
        x = x * self.w
        if self.function is None:
            for norm in self.norms:
                x = norm(x)
        else:
            for _ in range(self.depth):
                x = self.function(x)
        return x.sum()


class Gradient(nn.Cell):
    """The gradient of `chain` with respect to its parameters."""

    def __init__(self, chain: nn.Cell):
        super().__init__()
        self.chain = chain
        self.params = chain.trainable_params()
        self.grad = ops.GradOperation(get_by_list=True)

    def construct(self, x):
        return self.grad(self.chain, self.params)(x)


def measure(form: str, depth: int, repeats: int) -> dict:
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    shape = SHAPES[FORMS[form]]
    x = Tensor(np.random.default_rng(0).normal(0.0, 0.1, size=shape).astype(np.float32))
    gradient = Gradient(Chain(form, depth))
    built = rss_gb()
    gradient.compile(x)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = rss_gb()
    gradient(x)[0].asnumpy()
    after = rss_gb()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gradient(x)[0].asnumpy()
        times.append(time.perf_counter() - start)
    return {"form": form, "depth": depth, "kept_gb": after - before, "compiled_gb": before - built,
            "ms": 1000 * float(np.median(times)),
            "tensor_mb": float(np.prod(shape)) * 4 / 1e6}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    parser.add_argument("--depths", type=int, nargs=2, default=[2, 6])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after the first")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        form, depth, repeats = args.worker
        print(json.dumps(measure(form, int(depth), int(repeats))))
        return
    low, high = args.depths
    print(f"{'form':<22} {'shape':<18} {'tensors kept per op':>20} {'MB per op':>10} {'held from compiling':>20} "
          f"{'ms at depth ' + str(high):>16}")
    for form in args.forms:
        runs = {}
        for depth in (low, high):
            done = subprocess.run([sys.executable, __file__, "--worker", form, str(depth), str(args.repeats)],
                                  check=True, capture_output=True, text=True)
            runs[depth] = json.loads(done.stdout.strip().splitlines()[-1])
        per_op_mb = 1000 * (runs[high]["kept_gb"] - runs[low]["kept_gb"]) / (high - low)
        compiled_mb = 1000 * (runs[high]["compiled_gb"] - runs[low]["compiled_gb"]) / (high - low)
        shape = "x".join(map(str, SHAPES[FORMS[form]]))
        print(f"{form:<22} {shape:<18} {per_op_mb / runs[high]['tensor_mb']:>20.1f} {per_op_mb:>10.0f} "
              f"{compiled_mb / runs[high]['tensor_mb']:>20.1f} {runs[high]['ms']:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
