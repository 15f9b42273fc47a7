"""gptft against PyTorch eager: training step, inference, memory, compile time, MFU, and batching.

    pip install -c constraints.txt -e ".[bench]"
    python benchmarks/bench.py                      # everything (about 30 minutes on 2 cores)
    python benchmarks/bench.py --configs small      # one
    python benchmarks/bench.py --configs ""         # only the batching section

For each configuration two worker processes hold the same model with the same weights, one in gptft
(MindSpore, GRAPH_MODE) and one in PyTorch eager (benchmarks/torch_gpt.py), with the same number of
threads and the same batch. The coordinator asks them in turn (A B A B ...) to time a few steps, after
one warm-up step each, and reports medians. A training step is forward, task loss + 0.5 x LM loss,
backward, gradient clipping and AdamW; inference is the task model's forward pass in eval mode.
Peak memory is each worker's peak resident set (VmHWM). MFU is model FLOP/s over the fp32 matmul peak
measured here with PyTorch. The batching section times an epoch of IMDb-like lengths three ways, each
in its own process: bucketed with one compiled graph per length (the default), bucketed with one
dynamic-shape graph (`train.dynamic_length`), and everything padded to 512; it reports the share of
padded tokens and each one's peak memory.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFIGS = {
    # The model of MindSpore's first CPU measurements, before gptft.
    "small": dict(n_layer=4, n_embd=256, n_head=4, vocab_size=8000, seq=128, batch=8),
    # GPT-1 (openai-gpt) size at two sequence lengths.
    "gpt1-128": dict(n_layer=12, n_embd=768, n_head=12, vocab_size=40478, seq=128, batch=4),
    "gpt1-512": dict(n_layer=12, n_embd=768, n_head=12, vocab_size=40478, seq=512, batch=2),
    # For a quick check that the script runs.
    "tiny": dict(n_layer=2, n_embd=64, n_head=4, vocab_size=512, seq=32, batch=4),
}
LM_COEF = 0.5


def model_config(spec: dict):
    from gptft import GPTConfig

    return GPTConfig(vocab_size=spec["vocab_size"], block_size=max(512, spec["seq"]), n_embd=spec["n_embd"],
                     n_layer=spec["n_layer"], n_head=spec["n_head"])


def make_batch(spec: dict, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    B, T = spec["batch"], spec["seq"]
    return [rng.integers(0, spec["vocab_size"], (B, 1, T)).astype(np.int32), np.full((B, 1), T - 1, np.int32),
            np.ones((B, 1, T), np.float32), rng.integers(0, 2, B).astype(np.int32)]


def peak_rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


# ----------------------------------------------------------------------------------------------- workers

def gptft_step(spec: dict):
    """(task model, compiled train step, optimizer) of the benchmark's model in GRAPH_MODE on CPU."""
    import mindspore as ms

    from gptft import GPT
    from gptft.tasks.heads import ClassificationHead
    from gptft.tasks.losses import TaskLoss, cross_entropy
    from gptft.training.optim import AdamW
    from gptft.tasks.task_model import TaskModel
    from gptft.training.step import TrainStep

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    model = TaskModel(GPT(model_config(spec), seed=0), ClassificationHead(spec["n_embd"], 2))
    loss = TaskLoss(model, cross_entropy, LM_COEF)
    optimizer = AdamW(loss.trainable_params())
    return model, TrainStep(loss, optimizer, max_grad_norm=1.0), optimizer


def gptft_worker(spec: dict, weights: str):
    import numpy as np
    from mindspore import Tensor
    from safetensors.numpy import save_file

    from gptft.model.layers import named_parameters

    model, step, optimizer = gptft_step(spec)
    named = {k: np.ascontiguousarray(p.asnumpy()) for k, p in named_parameters(model, trainable_only=True).items()}
    save_file(named, weights)
    batch = [Tensor(a) for a in make_batch(spec)]
    scalars = optimizer.scalars(1, 6.25e-5)

    def train():
        step.set_train(True)
        return float(step(*scalars, *batch)[0])

    def infer():
        model.set_train(False)
        return float(model(batch[0], batch[1]).asnumpy().sum())

    return train, infer


def torch_worker(spec: dict, weights: str):
    import torch
    from safetensors.numpy import load_file

    sys.path.insert(0, str(HERE))
    from torch_gpt import TorchTaskModel, make_optimizer, train_step

    torch.set_num_threads(os.cpu_count())
    model = TorchTaskModel(model_config(spec), 2, LM_COEF)
    model.load_gptft(load_file(weights))
    optimizer = make_optimizer(model)
    batch = [torch.from_numpy(a) for a in make_batch(spec)]

    def train():
        model.train()
        return train_step(model, optimizer, batch)

    def infer():
        model.eval()
        with torch.inference_mode():
            B, S, T = batch[0].shape
            hidden = model.hidden(batch[0].view(B * S, T))
            logits = model.head.linear(hidden[torch.arange(B * S), batch[1].view(-1)])
        return float(logits.sum())

    return train, infer


def serve(framework: str, config: str, weights: str) -> None:
    """Worker loop: build, report the first (compiling) step, then answer timing requests on stdin."""
    spec = CONFIGS[config]
    start = time.perf_counter()
    train, infer = (gptft_worker if framework == "gptft" else torch_worker)(spec, weights)
    build = time.perf_counter() - start
    first = {}
    for name, fn in (("train", train), ("infer", infer)):
        t0 = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t0
    print(json.dumps({"ready": True, "build_s": build, "first_train_s": first["train"], "first_infer_s": first["infer"]}),
          flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        fn = train if request["op"] == "train" else infer
        times = []
        for _ in range(request["steps"]):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"times": times, "peak_rss_gb": peak_rss_gb()}), flush=True)


class Worker:
    def __init__(self, framework: str, config: str, weights: str):
        env = dict(os.environ, GLOG_v="3")
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", framework, config, weights],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"worker exited with {self.process.wait()}")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, op: str, steps: int) -> dict:
        self.process.stdin.write(json.dumps({"op": op, "steps": steps}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.flush()
        self.process.wait(timeout=60)


# ----------------------------------------------------------------------------------------------- measures

def matmul_peak_gflops() -> float:
    """fp32 matmul FLOP/s this machine reaches with PyTorch (best of several square sizes)."""
    import torch

    torch.set_num_threads(os.cpu_count())
    best = 0.0
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        t0 = time.perf_counter()
        repeats = 3
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9)
    return best


def flops_per_token(spec: dict, training: bool) -> float:
    """Matmul FLOPs per token (Kaplan et al. 2020): 2N forward (6N training) plus attention's 2·L·T·C (x3)."""
    L, C, V, T = spec["n_layer"], spec["n_embd"], spec["vocab_size"], spec["seq"]
    blocks = 12 * L * C * C
    if training:
        return 6 * (blocks + V * C) + 3 * 4 * L * T * C  # the LM head runs in training (λ = 0.5)
    return 2 * blocks + 4 * L * T * C


def run_config(name: str, repeats: int, steps: int, peak: float) -> dict:
    spec = CONFIGS[name]
    tokens = spec["batch"] * spec["seq"]
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "weights.safetensors")
        workers = {"gptft": Worker("gptft", name, weights)}
        workers["torch"] = Worker("torch", name, weights)
        times = {(fw, op): [] for fw in workers for op in ("train", "infer")}
        rss = {}
        for _ in range(repeats):
            for op in ("train", "infer"):
                for fw, worker in workers.items():  # A B A B: drift hits both alike
                    answer = worker.ask(op, steps)
                    times[fw, op].append(statistics.median(answer["times"]))
                    rss[fw] = answer["peak_rss_gb"]
        info = {fw: w.info for fw, w in workers.items()}
        for worker in workers.values():
            worker.close()
    result = {"config": name, **spec}
    for fw in ("gptft", "torch"):
        for op in ("train", "infer"):
            seconds = statistics.median(times[fw, op])
            result[f"{fw}_{op}_tokens_per_s"] = tokens / seconds
            result[f"{fw}_{op}_mfu"] = tokens / seconds * flops_per_token(spec, op == "train") / (peak * 1e9)
        result[f"{fw}_peak_rss_gb"] = rss[fw]
        result[f"{fw}_first_train_step_s"] = info[fw]["first_train_s"]
    result["train_ratio"] = result["gptft_train_tokens_per_s"] / result["torch_train_tokens_per_s"]
    result["infer_ratio"] = result["gptft_infer_tokens_per_s"] / result["torch_infer_tokens_per_s"]
    result["memory_ratio"] = result["gptft_peak_rss_gb"] / result["torch_peak_rss_gb"]
    return result


def imdb_like_lengths(count: int, seed: int = 0):
    """Token counts drawn like IMDb reviews: words log-normal (median 230, 2.5% past 1,000), 1.3 tokens a word."""
    import numpy as np

    words = np.random.default_rng(seed).lognormal(math.log(230), 0.75, count)
    return np.maximum(4, (words * 1.3).astype(int))


BATCHING_VARIANTS = {
    # name: (bucket lengths, one dynamic graph)
    "bucketed": ((), False),          # gptft's default: ~1.25x apart, one static graph per length
    "bucketed_dynamic": ((), True),   # the same batches, train.dynamic_length: one graph for all lengths
    "fixed_512": ((512,), False),     # everything padded to 512
}


def batching(examples: int, batch_size: int) -> dict:
    """Each variant in its own process, so each peak memory is its own."""
    result = {"examples": examples, "batch_size": batch_size}
    for variant in BATCHING_VARIANTS:
        env = dict(os.environ, GLOG_v="3")
        out = subprocess.run([sys.executable, __file__, "--serve-batching", variant, str(examples), str(batch_size)],
                             capture_output=True, text=True, env=env)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            result[variant] = {"error": f"exit {out.returncode} (-9: out of memory)"}
        else:
            result[variant] = json.loads(lines[-1])
    return result


def serve_batching(variant: str, examples: int, batch_size: int, max_length: int = 512) -> None:
    """One epoch of the small model over IMDb-like lengths: padding, compile time, epoch time, peak memory."""
    import numpy as np

    from gptft.data import Encoded, TrainBatches
    from gptft.tasks.formats import TaskTokens, classification
    from gptft.tasks import Task

    buckets, dynamic = BATCHING_VARIANTS[variant]
    task = Task("classification", labels=("neg", "pos"), max_length=max_length)
    tokens = TaskTokens(7997, 7998, 7999)
    rng = np.random.default_rng(1)
    sequences = [classification(list(rng.integers(0, 7990, n)), tokens, max_length) for n in imdb_like_lengths(examples)]
    encoded = Encoded(sequences, rng.integers(0, 2, examples).astype(np.int32), list(range(examples)))
    source = TrainBatches(encoded, task, batch_size, seed=0, buckets=buckets)
    compile_s, epoch_s = _time_epoch(source, dynamic)
    print(json.dumps({"padding_share": source.padding_share(), "compile_s": compile_s, "epoch_s": epoch_s,
                      "lengths": sorted({int(b[0].shape[-1]) for b in source.epoch(0)}),
                      "peak_rss_gb": peak_rss_gb()}), flush=True)


def _time_epoch(source, dynamic: bool) -> tuple[float, float]:
    """(seconds of the first step at each batch length, which compiles, seconds for the epoch after that)."""
    from mindspore import Tensor

    _, step, optimizer = gptft_step(CONFIGS["small"])
    batches = source.epoch(0)
    if dynamic:
        step.compile_for_any_length(batches[0])
    step.set_train(True)
    first_of_length = {int(b[0].shape[-1]): b for b in batches}
    start = time.perf_counter()
    for batch in first_of_length.values():
        float(step(*optimizer.scalars(1, 1e-4), *map(Tensor, batch))[0])
    compiling = time.perf_counter() - start
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        float(step(*optimizer.scalars(i + 1, 1e-4), *map(Tensor, batch))[0])
    return compiling, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="small,gpt1-128,gpt1-512")
    parser.add_argument("--repeats", type=int, default=3, help="A/B rounds per configuration")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--batching-examples", type=int, default=400, help="0 skips the batching section")
    parser.add_argument("--batching-batch", type=int, default=4, help="micro-batch of the batching section")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serve-batching", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(*args.serve)
    if args.serve_batching:
        variant, examples, batch_size = args.serve_batching
        return serve_batching(variant, int(examples), int(batch_size))
    peak = matmul_peak_gflops()
    print(f"machine: {os.cpu_count()} cores; fp32 matmul peak {peak:.0f} GFLOP/s (PyTorch)")
    results = {"matmul_peak_gflops": peak, "configs": []}
    for name in filter(None, args.configs.split(",")):
        r = run_config(name, args.repeats, args.steps, peak)
        results["configs"].append(r)
        print(f"\n{name}: {r['n_layer']} layers, width {r['n_embd']}, vocab {r['vocab_size']}, seq {r['seq']}, batch {r['batch']}")
        for op, label in (("train", "training step"), ("infer", "inference")):
            print(f"  {label:14s} gptft {r[f'gptft_{op}_tokens_per_s']:8.0f} tok/s (MFU {r[f'gptft_{op}_mfu']:.0%})  "
                  f"torch {r[f'torch_{op}_tokens_per_s']:8.0f} tok/s (MFU {r[f'torch_{op}_mfu']:.0%})  "
                  f"ratio {r[f'{op}_ratio']:.2f}x")
        print(f"  peak memory    gptft {r['gptft_peak_rss_gb']:.2f} GB  torch {r['torch_peak_rss_gb']:.2f} GB  "
              f"ratio {r['memory_ratio']:.2f}x")
        print(f"  first step     gptft {r['gptft_first_train_step_s']:.1f} s (compile)  torch {r['torch_first_train_step_s']:.1f} s")
    if args.batching_examples:
        b = batching(args.batching_examples, args.batching_batch)
        results["batching"] = b
        print(f"\nbatching: one epoch of {b['examples']} IMDb-like examples (up to 512 tokens), small model, "
              f"micro-batch {b['batch_size']}")
        for variant in BATCHING_VARIANTS:
            r = b[variant]
            if "error" in r:
                print(f"  {variant:16s} failed: {r['error']}")
                continue
            print(f"  {variant:16s} padded tokens {r['padding_share']:5.1%}  epoch {r['epoch_s']:6.1f} s  "
                  f"first steps {r['compile_s']:5.1f} s ({len(r['lengths'])} lengths)  peak memory {r['peak_rss_gb']:.2f} GB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
