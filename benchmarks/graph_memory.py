"""What each compiled training graph keeps: resident memory after the first step at each batch length.

    python benchmarks/graph_memory.py                        # the demo's model, lengths 64 56 40 32 24 16
    python benchmarks/graph_memory.py --order 16 24 32 40 56 64 --batch 16
    python benchmarks/graph_memory.py --dynamic               # one graph for every length

Every variant runs in its own process (memory is never given back within one). Each process builds the
demo's model shape (3 x 192, vocabulary 4,003, GPT-2 layout, dropout 0.1) with a classification head and
gptft's training step (task loss + 0.5 LM loss, clipping, AdamW), then runs a few steps at each length in
the given order and prints its resident set after them, with the median step time.
"""

import argparse
import json
import subprocess
import sys
import time


def rss_gb() -> float:
    """This process's resident set now, in GB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 1e9


def measure(order: list[int], batch: int, dynamic: bool, steps: int) -> list[dict]:
    import mindspore as ms
    import numpy as np

    from gptft import GPT, GPTConfig
    from gptft.tasks.heads import ClassificationHead
    from gptft.tasks.losses import TaskLoss, cross_entropy
    from gptft.tasks.task_model import TaskModel
    from gptft.training.optim import AdamW
    from gptft.training.step import TrainStep

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    config = GPTConfig.preset("gpt2", vocab_size=4003, n_layer=3, n_embd=192, n_head=4, block_size=max(order))
    model = TaskModel(GPT(config, seed=0), ClassificationHead(192, 2, dropout=0.1))
    loss = TaskLoss(model, cross_entropy, 0.5)
    step = TrainStep(loss, AdamW(loss.trainable_params()), 1.0)
    rng = np.random.default_rng(0)

    def batch_of(length: int):
        return (rng.integers(0, 4000, size=(batch, 1, length)).astype(np.int32),
                np.full((batch, 1), length - 1, np.int32), np.ones((batch, 1, length), np.float32),
                rng.integers(0, 2, size=(batch,)).astype(np.int32))

    rows = [{"length": "built", "rss_gb": round(rss_gb(), 2)}]
    if dynamic:
        step.compile_for_any_length(batch_of(order[0]))
    number = 0
    for length in order:
        times = []
        for _ in range(steps):
            number += 1
            start = time.perf_counter()
            step.train_on([batch_of(length)], number, 1e-4)
            times.append(time.perf_counter() - start)
        rows.append({"length": length, "first_s": round(times[0], 2), "step_ms": round(1000 * float(np.median(times[1:])), 1),
                     "rss_gb": round(rss_gb(), 2)})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--order", type=int, nargs="+", default=[64, 56, 40, 32, 24, 16])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dynamic", action="store_true", help="one graph with dynamic shapes for every length")
    parser.add_argument("--steps", type=int, default=4, help="steps at each length (the first compiles)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.order, args.batch, args.dynamic, args.steps)))
        return
    command = [sys.executable, __file__, "--worker", "--batch", str(args.batch), "--steps", str(args.steps),
               "--order", *map(str, args.order), *(["--dynamic"] if args.dynamic else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"micro-batch {args.batch}, {'one dynamic-shape graph' if args.dynamic else 'one graph per length'}")
    previous = None
    for row in rows:
        added = "" if previous is None else f" (+{row['rss_gb'] - previous:.2f})"
        timing = f"first step {row['first_s']:5.2f} s, then {row['step_ms']:6.1f} ms; " if "first_s" in row else ""
        print(f"  {str(row['length']):>5}: {timing}resident {row['rss_gb']:.2f} GB{added}")
        previous = row["rss_gb"]


if __name__ == "__main__":
    main()
