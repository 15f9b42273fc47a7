"""The CPU operator choices in gptft's layers, each against the plain alternative, forward and backward.

    python benchmarks/operators.py                 # GPT-1 shapes: 512 rows (4 x 128 tokens), width 768
    python benchmarks/operators.py --rows 256 --width 256

Each pair is compiled in GRAPH_MODE as `grad(sum(op(x) * cotangent))` with respect to the inputs (so the
backward kernels run), timed in turn (A B A B ...) after a warm-up, and reported as median milliseconds.
docs/performance-cpu.md quotes these numbers for the choices the layers' comments point at.
"""

import argparse
import statistics
import time

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from gptft.model.layers import Dropout, LayerNorm, gelu_tanh
from gptft.tasks.losses import cross_entropy


class Grad(nn.Cell):
    """d/d(inputs) of sum(fn(*inputs) * cotangent): forward and backward of `fn` in one compiled graph."""

    def __init__(self, fn, cotangent):
        super().__init__()
        self.fn = fn
        self.cotangent = cotangent
        self.grad = ops.GradOperation(get_all=True)(self.objective)

    def objective(self, *inputs):
        return (self.fn(*inputs) * self.cotangent).sum()

    def construct(self, *inputs):
        return self.grad(*inputs)


class Fn(nn.Cell):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def construct(self, *inputs):
        return self.fn(*inputs)


def timed(cell, inputs, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = cell(*inputs)
        (out[0] if isinstance(out, tuple) else out).asnumpy()
        times.append(time.perf_counter() - start)
    return times


def compare(name: str, a, b, inputs, out_shape, rounds: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    cotangent = Tensor(rng.normal(size=out_shape).astype(np.float32)) if out_shape else Tensor(np.float32(1.0))
    cells = {"chosen": Grad(a, cotangent), "plain": Grad(b, cotangent)}
    forward = {"chosen": Fn(a), "plain": Fn(b)}
    for cell in (*cells.values(), *forward.values()):
        cell.set_train(True)
        timed(cell, inputs, 1)  # compile
    results = {key: {"fwd_bwd": [], "fwd": []} for key in cells}
    for _ in range(rounds):
        for key in cells:
            results[key]["fwd_bwd"] += timed(cells[key], inputs, repeats)
            results[key]["fwd"] += timed(forward[key], inputs, repeats)
    row = {"op": name}
    for key in cells:
        for part in ("fwd", "fwd_bwd"):
            row[f"{key}_{part}_ms"] = 1000 * statistics.median(results[key][part])
    row["speedup_fwd_bwd"] = row["plain_fwd_bwd_ms"] / row["chosen_fwd_bwd_ms"]
    row["speedup_fwd"] = row["plain_fwd_ms"] / row["chosen_fwd_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=512, help="batch x tokens")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=40478)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(1)
    N, C, H, T = args.rows, args.width, args.heads, args.seq
    B = N // T

    def tensor(*shape):
        return Tensor(rng.normal(size=shape).astype(np.float32))

    x, hidden = tensor(N, C), tensor(N, 4 * C)
    weight, bias = tensor(4 * C, C), tensor(4 * C)
    norm = LayerNorm(C, 1e-5)
    matmul_t, matmul = ops.MatMul(transpose_b=True), ops.MatMul()
    split = ops.Split(axis=-1, output_num=3)
    hs = C // H

    def heads_after_split(qkv):
        q, k, v = split(qkv.reshape(B, T, 3 * C))
        return ops.concat([ops.transpose(t.reshape(B, T, H, hs), (0, 2, 1, 3)) for t in (q, k, v)], 0)

    def heads_by_index(qkv):
        parts = ops.transpose(qkv.reshape(B, T, 3, H, hs), (2, 0, 3, 1, 4))
        return ops.concat([parts[0], parts[1], parts[2]], 0)

    labels = Tensor(rng.integers(0, args.vocab, N).astype(np.int32))
    dropout_probs = ops.softmax(tensor(B, H, T, T), -1)
    hash_dropout = Dropout(0.1)
    hash_dropout.set_train(True)
    layer_norm_kernel = ops.LayerNorm(-1, -1, 1e-5)

    def gelu_kernel(h):
        return ops.gelu(h, approximate="tanh")

    def norm_kernel(t):
        return layer_norm_kernel(t, norm.weight, norm.bias)[0]

    def x_w_t(t, w):
        return matmul_t(t, w)

    def x_w(t, w):
        return matmul(t, ops.transpose(w, (1, 0)))

    def broadcast_bias(t, b):
        return t + b

    def bias_add(t, b):
        return ops.bias_add(t, b)

    def fused_cross_entropy(logits):
        return cross_entropy(logits, labels)

    def plain_cross_entropy(logits):
        return ops.cross_entropy(logits, labels)

    def hash_drop(p):
        return hash_dropout(p)

    def kernel_drop(p):
        return ops.dropout(p, p=0.1)

    pairs = [
        ("GELU: x*sigmoid(2z) vs GeLU kernel (tanh)", gelu_tanh, gelu_kernel, (hidden,), (N, 4 * C)),
        ("LayerNorm: matmul means vs LayerNorm kernel", norm, norm_kernel, (x,), (N, C)),
        ("Linear: x @ W^T vs x @ W", x_w_t, x_w, (x, weight), (N, 4 * C)),
        ("bias: broadcast add vs BiasAdd", broadcast_bias, bias_add, (hidden, bias), (N, 4 * C)),
        ("QKV: split then heads vs one reshape and index", heads_after_split, heads_by_index, (tensor(N, 3 * C),),
         (3 * B, H, T, hs)),
        ("cross-entropy: fused sparse kernel vs ops.cross_entropy", fused_cross_entropy, plain_cross_entropy,
         (tensor(N, args.vocab),), ()),
        ("dropout: gptft's hash vs ops.dropout", hash_drop, kernel_drop, (dropout_probs,), (B, H, T, T)),
    ]
    print(f"rows {N}, width {C}, {H} heads x {T} tokens, vocab {args.vocab}; medians of "
          f"{args.rounds} x {args.repeats} runs, milliseconds")
    print(f"{'operation':58s} {'chosen fwd':>10s} {'plain fwd':>10s} {'chosen f+b':>10s} {'plain f+b':>10s} "
          f"{'f+b speedup':>11s}")
    for name, a, b, inputs, shape in pairs:
        r = compare(name, a, b, inputs, shape, args.rounds, args.repeats)
        print(f"{name:58s} {r['chosen_fwd_ms']:10.2f} {r['plain_fwd_ms']:10.2f} {r['chosen_fwd_bwd_ms']:10.2f} "
              f"{r['plain_fwd_bwd_ms']:10.2f} {r['speedup_fwd_bwd']:10.2f}x", flush=True)


if __name__ == "__main__":
    main()
