"""gptft against PyTorch: training step, inference, memory, compile time, MFU, and batching.

    pip install -c constraints.txt -e ".[bench]"
    python benchmarks/bench.py                      # everything (about 40 minutes on 2 cores)
    python benchmarks/bench.py --configs small      # one
    python benchmarks/bench.py --configs ""         # only the batching section

Three peers hold the same model with the same weights, each in its own worker process and for training
and inference in separate processes (so each peak memory is its own): gptft (MindSpore, GRAPH_MODE),
transformers (`OpenAIGPTLMHeadModel` with `labels=ids`, a linear head on the last hidden state, loss =
CE + 0.5 LM, torch AdamW, clipping: what a transformers user writes) and a hand-written PyTorch GPT
(benchmarks/torch_gpt.py), all on the same threads and batch. The coordinator asks them in turn (A B C A B
C ...) to time a few steps, after one warm-up step each, and reports medians. A training step is forward,
task loss + 0.5 x LM loss, backward, gradient clipping and AdamW; inference is the task model's forward
pass in eval mode. Peak memory is each worker's peak resident set (VmHWM). gptft's first step is timed
twice: with an empty compile cache, then in a new process with the cache the first one filled. MFU is
model FLOP/s over the fp32 matmul peak measured here with PyTorch. The batching section times an epoch of
IMDb-like lengths three ways, each in its own process: bucketed with one compiled graph per length (the
default), bucketed with one dynamic-shape graph (`train.dynamic_length`), and everything padded to 512;
it reports the share of padded tokens and each one's peak memory.
"""

import argparse
import contextlib
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


def gptft_worker(spec: dict, weights: str, op: str):
    import numpy as np
    from mindspore import Tensor
    from safetensors.numpy import save_file

    from gptft.model.layers import named_parameters

    model, step, optimizer = gptft_step(spec)
    named = {k: np.ascontiguousarray(p.asnumpy()) for k, p in named_parameters(model, weights_only=True).items()}
    if not Path(weights).exists():
        save_file(named, weights)
    arrays = make_batch(spec)
    batch = [Tensor(a) for a in arrays]

    def train():
        step.set_train(True)
        return step.train_on([arrays], 1, 6.25e-5)[0]["loss"]

    def infer():
        model.set_train(False)
        return float(model(batch[0], batch[1]).asnumpy().sum())

    return train if op == "train" else infer


def torch_worker(spec: dict, weights: str, op: str):
    import torch
    from safetensors.numpy import load_file

    sys.path.insert(0, str(HERE))
    from torch_gpt import TorchTaskModel, make_optimizer, train_step

    torch.set_num_threads(os.cpu_count())
    model = TorchTaskModel(model_config(spec), 2, LM_COEF)
    model.load_gptft(load_file(weights))
    optimizer = make_optimizer(model) if op == "train" else None
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

    return train if op == "train" else infer


def transformers_worker(spec: dict, weights: str, op: str):
    """The step as a transformers user writes it: OpenAIGPTLMHeadModel(labels=ids), a linear head, AdamW."""
    import torch
    import torch.nn.functional as F
    from safetensors.numpy import load_file
    from transformers import OpenAIGPTConfig, OpenAIGPTLMHeadModel

    torch.set_num_threads(os.cpu_count())
    config = OpenAIGPTConfig(vocab_size=spec["vocab_size"], n_positions=max(512, spec["seq"]), n_embd=spec["n_embd"],
                             n_layer=spec["n_layer"], n_head=spec["n_head"])
    model = OpenAIGPTLMHeadModel(config)
    head = torch.nn.Linear(spec["n_embd"], 2)
    named = load_file(weights)
    state = {"transformer.tokens_embed.weight": named["backbone.wte.weight"],
             "transformer.positions_embed.weight": named["backbone.wpe.weight"][:config.n_positions]}
    for i in range(spec["n_layer"]):
        for ours, theirs in (("attn.c_attn", "attn.c_attn"), ("attn.c_proj", "attn.c_proj"), ("mlp.c_fc", "mlp.c_fc"),
                             ("mlp.c_proj", "mlp.c_proj")):
            state[f"transformer.h.{i}.{theirs}.weight"] = named[f"backbone.h.{i}.{ours}.weight"].T  # Conv1D (in, out)
            state[f"transformer.h.{i}.{theirs}.bias"] = named[f"backbone.h.{i}.{ours}.bias"]
        for norm in ("ln_1", "ln_2"):
            state[f"transformer.h.{i}.{norm}.weight"] = named[f"backbone.h.{i}.{norm}.weight"]
            state[f"transformer.h.{i}.{norm}.bias"] = named[f"backbone.h.{i}.{norm}.bias"]
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False)
    head.load_state_dict({"weight": torch.from_numpy(named["head.linear.weight"].copy()),
                          "bias": torch.from_numpy(named["head.linear.bias"].copy())})
    params = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=6.25e-5, weight_decay=0.01) if op == "train" else None
    ids, positions, _, labels = (torch.from_numpy(a) for a in make_batch(spec))
    B, S, T = ids.shape
    flat = ids.view(B * S, T).long()

    def train():
        model.train()
        head.train()
        optimizer.zero_grad(set_to_none=True)
        out = model(flat, labels=flat, output_hidden_states=True)
        extract = out.hidden_states[-1][torch.arange(B * S), positions.view(-1)]
        loss = F.cross_entropy(head(F.dropout(extract, 0.1, True)), labels.long()) + LM_COEF * out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return float(loss.detach())

    def infer():
        model.eval()
        with torch.inference_mode():
            hidden = model.transformer(flat).last_hidden_state
            return float(head(hidden[torch.arange(B * S), positions.view(-1)]).sum())

    return train if op == "train" else infer


WORKERS = {"gptft": gptft_worker, "transformers": transformers_worker, "torch": torch_worker}


def first_call_context(framework: str, spec: dict, op: str):
    """gptft's compile cache around the first call, which compiles every graph the worker uses."""
    if framework != "gptft":
        return contextlib.nullcontext()
    from gptft.training import compile_cache

    return compile_cache.cached({"benchmark": spec, "op": op})


class CompileClock:
    """Seconds MindSpore spends compiling (or loading from the compile cache) the graphs of every `Cell`
    called while it is on: the first call's time apart from what its graphs take to run."""

    def __init__(self, framework: str):
        self.seconds = 0.0
        self.cell = None
        if framework == "gptft":
            from mindspore import nn

            self.cell, self.compile = nn.Cell, nn.Cell.compile

    def __enter__(self):
        if self.cell is not None:
            clock, compile_ = self, self.compile

            def timed(cell, *args, **kwargs):
                start = time.perf_counter()
                try:
                    return compile_(cell, *args, **kwargs)
                finally:
                    clock.seconds += time.perf_counter() - start

            self.cell.compile = timed
        return self

    def __exit__(self, *exc):
        if self.cell is not None:
            self.cell.compile = self.compile
        return False


def serve(framework: str, config: str, weights: str, op: str) -> None:
    """Worker loop: build, report the first (compiling) call, then answer timing requests on stdin."""
    spec = CONFIGS[config]
    start = time.perf_counter()
    fn = WORKERS[framework](spec, weights, op)
    build = time.perf_counter() - start
    t0 = time.perf_counter()
    with first_call_context(framework, spec, op), CompileClock(framework) as clock:
        fn()
    first = time.perf_counter() - t0
    print(json.dumps({"ready": True, "build_s": build, "first_s": first, "compile_s": clock.seconds,
                      "peak_rss_gb": peak_rss_gb()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        times = []
        for _ in range(request["steps"]):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"times": times, "peak_rss_gb": peak_rss_gb()}), flush=True)


class Worker:
    def __init__(self, framework: str, config: str, weights: str, op: str, cache: str):
        env = dict(os.environ, GLOG_v="3", GPTFT_COMPILE_CACHE=cache)
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", framework, config, weights, op],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"worker exited with {self.process.wait()}")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, steps: int) -> dict:
        self.process.stdin.write(json.dumps({"op": "time", "steps": steps}) + "\n")
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
    result = {"config": name, **spec}
    with tempfile.TemporaryDirectory() as tmp:
        weights, cache = str(Path(tmp) / "weights.safetensors"), str(Path(tmp) / "compile-cache")
        for op in ("train", "infer"):
            workers = {fw: Worker(fw, name, weights, op, cache) for fw in WORKERS}  # gptft first: it writes the weights
            times = {fw: [] for fw in workers}
            for _ in range(repeats):
                for fw, worker in workers.items():  # A B C A B C: drift hits all alike
                    answer = worker.ask(steps)
                    times[fw].append(statistics.median(answer["times"]))
                    result[f"{fw}_{op}_peak_rss_gb"] = answer["peak_rss_gb"]
            for fw, worker in workers.items():
                result[f"{fw}_{op}_tokens_per_s"] = tokens / statistics.median(times[fw])
                result[f"{fw}_{op}_mfu"] = result[f"{fw}_{op}_tokens_per_s"] * flops_per_token(spec, op == "train") / (peak * 1e9)
                result[f"{fw}_first_{op}_s"] = worker.info["first_s"]
                result[f"{fw}_first_{op}_compile_s"] = worker.info["compile_s"]
                worker.close()
            warm = Worker("gptft", name, weights, op, cache)  # a new process, the cache the first one filled
            result[f"gptft_first_{op}_warm_s"] = warm.info["first_s"]
            result[f"gptft_first_{op}_warm_compile_s"] = warm.info["compile_s"]
            result[f"gptft_{op}_peak_rss_warm_gb"] = warm.info["peak_rss_gb"]
            warm.close()
    for op in ("train", "infer"):
        for peer in ("transformers", "torch"):
            result[f"{op}_ratio_{peer}"] = result[f"gptft_{op}_tokens_per_s"] / result[f"{peer}_{op}_tokens_per_s"]
            result[f"{op}_memory_ratio_{peer}"] = result[f"gptft_{op}_peak_rss_gb"] / result[f"{peer}_{op}_peak_rss_gb"]
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
    _, step, optimizer = gptft_step(CONFIGS["small"])
    batches = source.epoch(0)
    if dynamic:
        step.compile_for_any_length(batches[0])
    step.set_train(True)
    first_of_length = {int(b[0].shape[-1]): b for b in batches}
    start = time.perf_counter()
    for batch in first_of_length.values():
        step.train_on([batch], 1, 1e-4)
    compiling = time.perf_counter() - start
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        step.train_on([batch], i + 1, 1e-4)
    return compiling, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="small,gpt1-128,gpt1-512")
    parser.add_argument("--repeats", type=int, default=3, help="A/B rounds per configuration")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--batching-examples", type=int, default=400, help="0 skips the batching section")
    parser.add_argument("--batching-batch", type=int, default=4, help="micro-batch of the batching section")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
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
                  f"transformers {r[f'transformers_{op}_tokens_per_s']:8.0f} ({r[f'{op}_ratio_transformers']:.2f}x)  "
                  f"torch {r[f'torch_{op}_tokens_per_s']:8.0f} ({r[f'{op}_ratio_torch']:.2f}x)")
            print(f"  {'peak memory':14s} gptft {r[f'gptft_{op}_peak_rss_gb']:.2f} GB (warm cache "
                  f"{r[f'gptft_{op}_peak_rss_warm_gb']:.2f})  transformers {r[f'transformers_{op}_peak_rss_gb']:.2f} GB "
                  f"({r[f'{op}_memory_ratio_transformers']:.2f}x)  torch {r[f'torch_{op}_peak_rss_gb']:.2f} GB "
                  f"({r[f'{op}_memory_ratio_torch']:.2f}x)")
            print(f"  {'first call':14s} gptft {r[f'gptft_first_{op}_s']:.1f} s cold (compiling "
                  f"{r[f'gptft_first_{op}_compile_s']:.1f} s), {r[f'gptft_first_{op}_warm_s']:.1f} s warm cache (loading "
                  f"{r[f'gptft_first_{op}_warm_compile_s']:.1f} s), a call later {r['batch'] * r['seq'] / r[f'gptft_{op}_tokens_per_s']:.2f} s; "
                  f"transformers {r[f'transformers_first_{op}_s']:.1f} s, torch {r[f'torch_first_{op}_s']:.1f} s")
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
