"""MindSpore's and PyTorch's float32 matrix products on this CPU, at the shapes of a GPT block's linear layers.

    python benchmarks/matmul.py                        # the small benchmark model and GPT-1 at 128 tokens
    python benchmarks/matmul.py --configs gpt1-512 --rounds 5

A transformer's forward pass is mostly these four products (QKV, attention output, MLP in, MLP out), so
their speed bounds how fast inference can run whatever the model code does around them. Each framework
times the four products of one block as gptft and a PyTorch model compute them (`x @ W^T`: MindSpore's
`MatMul(transpose_b=True)` in one GRAPH_MODE graph, PyTorch's `torch.nn.functional.linear`), on all cores,
in a process of its own (the two thread pools never share the cores), rounds alternating between the
frameworks, and the medians are reported with the rate in GFLOP/s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import CONFIGS  # noqa: E402

REPEATS = 30


def block_shapes(spec: dict) -> list[tuple[int, int, int]]:
    """(rows, in, out) of the block's four linear layers."""
    rows, width = spec["batch"] * spec["seq"], spec["n_embd"]
    return [(rows, width, 3 * width), (rows, width, width), (rows, width, 4 * width), (rows, 4 * width, width)]


def operands(shapes, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32))
            for m, k, n in shapes]


def time_mindspore(shapes) -> list[float]:
    import mindspore as ms
    from mindspore import Tensor, nn, ops

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)

    class Products(nn.Cell):
        def __init__(self):
            super().__init__()
            self.matmul = ops.MatMul(transpose_b=True)

        def construct(self, *xs):
            return tuple(self.matmul(xs[i], xs[i + 1]) for i in range(0, len(xs), 2))

    inputs = [Tensor(a) for pair in operands(shapes) for a in pair]
    products = Products()
    run = lambda: [out.asnumpy() for out in products(*inputs)]  # noqa: E731
    return _times(run)


def time_torch(shapes) -> list[float]:
    import torch

    torch.set_num_threads(os.cpu_count())
    pairs = [(torch.from_numpy(x), torch.from_numpy(w)) for x, w in operands(shapes)]
    run = lambda: [torch.nn.functional.linear(x, w) for x, w in pairs]  # noqa: E731
    with torch.inference_mode():
        return _times(run)


def _times(run) -> list[float]:
    run()  # compiles (MindSpore) and warms the caches
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


TIMERS = {"mindspore": time_mindspore, "torch": time_torch}


def measure(framework: str, config: str) -> float:
    """Median seconds for the four products, timed in a new process."""
    out = subprocess.run([sys.executable, __file__, "--serve", framework, config], capture_output=True, text=True,
                         check=True, env=dict(os.environ, GLOG_v="3")).stdout
    return json.loads(out.strip().splitlines()[-1])["median_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="small,gpt1-128")
    parser.add_argument("--rounds", type=int, default=3, help="processes per framework, alternating")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        framework, config = args.serve
        print(json.dumps({"median_s": statistics.median(TIMERS[framework](block_shapes(CONFIGS[config])))}))
        return
    for config in filter(None, args.configs.split(",")):
        shapes = block_shapes(CONFIGS[config])
        flops = sum(2 * m * k * n for m, k, n in shapes)
        medians = {framework: [] for framework in TIMERS}
        for _ in range(args.rounds):
            for framework in TIMERS:
                medians[framework].append(measure(framework, config))
        ms_s, torch_s = (statistics.median(medians[f]) for f in ("mindspore", "torch"))
        print(f"{config}: one block's four products ({', '.join(f'{m}x{k} @ {k}x{n}' for m, k, n in shapes)})")
        for framework, seconds in (("mindspore", ms_s), ("torch", torch_s)):
            rounds = ", ".join(f"{1000 * s:.1f}" for s in medians[framework])
            print(f"  {framework:9s} {1000 * seconds:6.2f} ms  {flops / seconds / 1e9:5.0f} GFLOP/s  (rounds: {rounds} ms)")
        print(f"  MindSpore at {torch_s / ms_s:.2f}x PyTorch's rate")


if __name__ == "__main__":
    main()
