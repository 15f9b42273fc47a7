"""AdamW's update of a whole model: gptft's update against MindSpore's fused AdamW kernel and PyTorch's
three AdamW implementations, and the first update against later ones.

    python benchmarks/optimizer.py                     # GPT-1's parameters (116M)
    python benchmarks/optimizer.py --configs small,gpt1-128 --rounds 3

Every way updates the same parameter shapes (a GPT of the configuration plus a two-class head, as
`benchmarks/bench.py` trains it) from the same gradients, in a process of its own on all cores, rounds
alternating between the ways:

- `gptft`: `training.optim.AdamW.apply`, MindSpore's `Adam` kernel after an `ApplyGradientDescent` of
  each decayed parameter on itself (the decoupled decay), one graph call per layer; `gptft-clipped` is
  the same with the clipping factor applied to the gradients, as `TrainStep` calls it;
- `ms-adamweightdecay`: MindSpore's fused `AdamWeightDecay` kernel (gptft's update before), with the bias
  correction folded into its learning rate, epsilon and decay, per layer in the same way;
- `torch-for-loop`, `torch-foreach`, `torch-fused`: `torch.optim.AdamW` with `foreach=False`,
  `foreach=True` and `fused=True`.

The first update writes the moments for the first time (and compiles, in MindSpore: that part is timed
apart and left out); later updates are reported as a median. docs/performance-cpu.md#optimizer quotes
the results.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import CONFIGS, CompileClock  # noqa: E402

LR, BETAS, EPS, WEIGHT_DECAY, CLIP = 6.25e-5, (0.9, 0.999), 1e-8, 0.01, 0.5
UPDATES = 6


def parameter_shapes(spec: dict) -> list[tuple[str, tuple]]:
    """(name, shape) of every trained parameter of the configuration's GPT and a two-class head, in the
    model's order; the names carry the layer numbers gptft's per-layer update segments go by."""
    C, hidden = spec["n_embd"], 4 * spec["n_embd"]
    shapes = [("wte.weight", (spec["vocab_size"], C)), ("wpe.weight", (max(512, spec["seq"]), C))]
    for i in range(spec["n_layer"]):
        for name, shape in (("ln_1.weight", (C,)), ("ln_1.bias", (C,)), ("attn.c_attn.weight", (3 * C, C)),
                            ("attn.c_attn.bias", (3 * C,)), ("attn.c_proj.weight", (C, C)), ("attn.c_proj.bias", (C,)),
                            ("ln_2.weight", (C,)), ("ln_2.bias", (C,)), ("mlp.c_fc.weight", (hidden, C)),
                            ("mlp.c_fc.bias", (hidden,)), ("mlp.c_proj.weight", (C, hidden)), ("mlp.c_proj.bias", (C,))):
            shapes.append((f"h.{i}.{name}", shape))
    return shapes + [("head.linear.weight", (2, C)), ("head.linear.bias", (2,))]


def arrays(spec: dict, seed: int = 0):
    """(names, parameter values, gradients) as float32 NumPy arrays."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shapes = parameter_shapes(spec)
    values = [(0.02 * rng.standard_normal(shape)).astype(np.float32) for _, shape in shapes]
    grads = [(1e-3 * rng.standard_normal(shape)).astype(np.float32) for _, shape in shapes]
    return [name for name, _ in shapes], values, grads


def mindspore_update(way: str, spec: dict):
    """A function that runs one update of every parameter the way `way` says."""
    import mindspore as ms
    from mindspore import Parameter, Tensor

    import numpy as np

    from gptft.training.optim import AdamW, decays, segments

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    names, values, grads = arrays(spec)
    params = [Parameter(Tensor(v), name=n) for n, v in zip(names, values)]
    grads = [Tensor(g) for g in grads]
    if way.startswith("gptft"):
        optimizer = AdamW(params, BETAS, EPS, WEIGHT_DECAY)
        scale = Tensor(CLIP, ms.float32) if way == "gptft-clipped" else None
        count = [0]

        def update():
            count[0] += 1
            optimizer.apply(grads, optimizer.scalars(count[0], LR), scale)
            params[-1].asnumpy()  # waits for the last segment's update

        return update
    cell = _fused_kernel(BETAS)
    m = [Parameter(Tensor(np.zeros_like(value)), name=f"adam_m.{n}") for n, value in zip(names, values)]
    v = [Parameter(Tensor(np.zeros_like(value)), name=f"adam_v.{n}") for n, value in zip(names, values)]
    parts = segments(params)
    count = [0]

    def update():
        count[0] += 1
        beta1, beta2 = BETAS
        correction2 = math.sqrt(1.0 - beta2 ** count[0])
        lr_t = LR * correction2 / (1.0 - beta1 ** count[0])
        scalars = [Tensor(x, ms.float32) for x in (lr_t, EPS * correction2, WEIGHT_DECAY * LR / lr_t)]
        for part in parts:
            state = [Tensor(x) for x in (*(params[i] for i in part), *(m[i] for i in part), *(v[i] for i in part))]
            cell(tuple(decays(params[i]) for i in part), *scalars, *state, *(grads[i] for i in part))
        params[-1].asnumpy()

    return update


def _fused_kernel(betas):
    """A cell running the fused `AdamWeightDecay` kernel on a segment, with the bias correction folded into
    the kernel's learning rate, epsilon and decay (made here so that the PyTorch processes never import
    MindSpore)."""
    import mindspore as ms
    from mindspore import Tensor, nn, ops

    class FusedAdamWeightDecay(nn.Cell):
        def __init__(self):
            super().__init__()
            self.beta1, self.beta2 = Tensor(betas[0], ms.float32), Tensor(betas[1], ms.float32)
            self.zero = Tensor(0.0, ms.float32)
            self.kernel = ops.AdamWeightDecay()

        def construct(self, decayed, lr_t, eps_t, decay_t, *rest):
            n = len(decayed)
            for i in range(n):
                self.kernel(rest[i], rest[n + i], rest[2 * n + i], lr_t, self.beta1, self.beta2, eps_t,
                            decay_t if decayed[i] else self.zero, rest[3 * n + i])
            return lr_t

    return FusedAdamWeightDecay()


def torch_update(way: str, spec: dict):
    import torch

    torch.set_num_threads(os.cpu_count())
    _, values, grads = arrays(spec)
    params = [torch.nn.Parameter(torch.from_numpy(v)) for v in values]
    for param, grad in zip(params, grads):
        param.grad = torch.from_numpy(grad)
    options = {"torch-for-loop": {"foreach": False}, "torch-foreach": {"foreach": True},
               "torch-fused": {"fused": True}}[way]
    optimizer = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, **options)
    return optimizer.step


WAYS = ("gptft", "gptft-clipped", "ms-adamweightdecay", "torch-for-loop", "torch-foreach", "torch-fused")


def serve(way: str, config: str) -> None:
    spec = CONFIGS[config]
    framework = "torch" if way.startswith("torch") else "gptft"
    update = (torch_update if framework == "torch" else mindspore_update)(way, spec)
    with CompileClock(framework) as clock:
        start = time.perf_counter()
        update()
        first = time.perf_counter() - start
    times = []
    for _ in range(UPDATES):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    print(json.dumps({"first_s": first - clock.seconds, "compile_s": clock.seconds, "median_s": statistics.median(times)}))


def measure(way: str, config: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--serve", way, config], capture_output=True, text=True, check=True,
                         env=dict(os.environ, GLOG_v="3")).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="gpt1-128")
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--rounds", type=int, default=2, help="processes per way, alternating")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(*args.serve)
    ways = args.ways.split(",")
    for config in filter(None, args.configs.split(",")):
        shapes = parameter_shapes(CONFIGS[config])
        runs = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way in ways:
                runs[way].append(measure(way, config))
        count = sum(math.prod(shape) for _, shape in shapes)
        print(f"{config}: one AdamW update of {count / 1e6:.1f}M parameters in {len(shapes)} tensors")
        for way in ways:
            later = ", ".join(f"{1000 * r['median_s']:.0f}" for r in runs[way])
            first = ", ".join(f"{1000 * r['first_s']:.0f}" for r in runs[way])
            print(f"  {way:16s} later updates {later} ms; first update {first} ms (compiling left out)")


if __name__ == "__main__":
    main()
