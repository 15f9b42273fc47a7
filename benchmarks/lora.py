"""Full fine-tuning against LoRA: peak memory and speed of a training step, GPT-1 to GPT-2 large.

    python benchmarks/lora.py                           # every model, both ways (about 10 minutes on 2 cores)
    python benchmarks/lora.py --models gpt1 --modes lora

Each (model, mode) runs in its own process: a GPT at the released shapes with random weights (the hub
is out of reach here; the weights' values do not change the cost), the task tokens added, a two-class
head, and gptft's fine-tuning step (task loss + 0.5 x LM loss, clipping, AdamW, GRAPH_MODE) on batches
of `--batch` sequences of `--seq` tokens. LoRA is `train.lora` with `--rank` on the default targets
(attention's c_attn and c_proj). Reported: trainable parameters, the first step (compiling included),
the median of the timed steps as tokens/s, the checkpoint a run would write (MB), and the process's
peak resident memory (VmHWM). A process the kernel kills for memory is reported as not fitting.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = {"gpt1": "openai-gpt", "gpt2": "gpt2", "gpt2-medium": "gpt2-medium", "gpt2-large": "gpt2-large"}


def peak_rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def worker(model: str, mode: str, batch: int, seq: int, steps: int, rank: int) -> dict:
    import mindspore as ms
    import numpy as np

    from gptft import GPT, GPTConfig, Task, TaskModel
    from gptft.commands.finetune import task_train_step
    from gptft.model.config import LoRAConfig
    from gptft.model.lora import add_adapters, count_parameters
    from gptft.training.config import TrainConfig

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    config = GPTConfig.preset(MODELS[model])
    backbone = GPT(config, seed=0)

    class Vocabulary:  # TaskModel.for_task reads only the size: the released vocabulary and 3 task tokens
        vocab_size = config.vocab_size + 3

    task_model = TaskModel.for_task(backbone, Task("classification", labels=("negative", "positive")), Vocabulary())
    lora = LoRAConfig(rank=rank if mode == "lora" else 0)
    if lora.rank:
        add_adapters(backbone, lora, first_new_row=config.vocab_size)
    step = task_train_step(task_model, TrainConfig(lora=lora))
    step.set_train(True)
    rng = np.random.default_rng(0)
    arrays = (rng.integers(0, config.vocab_size, (batch, 1, seq)).astype(np.int32), np.full((batch, 1), seq - 1, np.int32),
              np.ones((batch, 1, seq), np.float32), rng.integers(0, 2, batch).astype(np.int32))
    start = time.perf_counter()
    step.train_on([arrays], 1, 1e-4)
    first = time.perf_counter() - start
    times = []
    for t in range(2, steps + 2):
        start = time.perf_counter()
        step.train_on([arrays], t, 1e-4)
        times.append(time.perf_counter() - start)
    trained, total = count_parameters(task_model)
    checkpoint = sum(p.nbytes for p in (t.asnumpy() for t in step.checkpoint_state().values()))
    return {"model": model, "mode": mode, "trained": trained, "total": total, "first_step_s": round(first, 1),
            "tokens_per_s": round(batch * seq / statistics.median(times), 1), "checkpoint_mb": round(checkpoint / 1e6, 1),
            "peak_rss_gb": round(peak_rss_gb(), 2)}


def run(model: str, mode: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", model, mode, "--batch", str(args.batch), "--seq", str(args.seq),
               "--steps", str(args.steps), "--rank", str(args.rank)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        killed = done.returncode < 0
        return {"model": model, "mode": mode, "error": "killed (out of memory)" if killed else done.stderr.strip()[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict], args) -> str:
    lines = ["| model | fine-tuning | trained parameters | first step (s) | tokens/s | checkpoint (MB) | peak RSS (GB) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        how = "full" if r["mode"] == "full" else f"LoRA r={args.rank}"
        if "error" in r:
            lines.append(f"| {r['model']} | {how} | | | | | {r['error']} |")
            continue
        share = f"{r['trained'] / 1e6:,.2f}M of {r['total'] / 1e6:,.0f}M"
        lines.append(f"| {r['model']} | {how} | {share} | {r['first_step_s']} | {r['tokens_per_s']:,.0f} | "
                     f"{r['checkpoint_mb']:,.0f} | {r['peak_rss_gb']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt1,gpt2-medium,gpt2-large")
    parser.add_argument("--modes", default="full,lora")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.batch, args.seq, args.steps, args.rank)))
        return
    rows = []
    for model in args.models.split(","):
        for mode in args.modes.split(","):
            rows.append(run(model, mode, args))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nbatch {args.batch} x {args.seq} tokens, {args.steps} timed steps after the first\n")
    print(table(rows, args))


if __name__ == "__main__":
    main()
