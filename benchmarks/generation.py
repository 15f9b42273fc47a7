"""Generation speed: `GPT.generate` against transformers' `generate`, same weights.

Random weights of GPT-1's or GPT-2's size (12 x 768; vocab 40,478 or 50,257) are written once as a
Hugging Face folder; each
framework loads it in its own process, generates greedily from the same prompt once to compile / warm up,
then times `--repeats` more calls. Prints tokens/s (new tokens over the median call), the first call's
time, peak resident memory, and whether the two produced the same tokens.

    python benchmarks/generation.py [--family openai-gpt|gpt2] [--prompt-tokens 32] [--new-tokens 64] [--batch 1]

transformers' GPT-1 (`OpenAIGPTLMHeadModel`) has no key/value cache: its `generate` runs the whole sequence
again for every token. Its GPT-2 uses the cache, so `--family gpt2` is the like-for-like comparison.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def hf_class(family: str):
    import transformers

    return {"openai-gpt": (transformers.OpenAIGPTConfig, transformers.OpenAIGPTLMHeadModel),
            "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel)}[family]


def write_weights(folder: str, args) -> None:
    import torch

    config, model = hf_class(args.family)
    torch.manual_seed(args.seed)
    model(config()).save_pretrained(folder)


def prompts(args) -> list[list[int]]:
    rng = np.random.default_rng(args.seed)
    return rng.integers(0, 40478, size=(args.batch, args.prompt_tokens)).tolist()  # in both vocabularies


def run_gptft(folder: str, args) -> dict:
    import mindspore as ms

    from gptft import GPT

    ms.set_context(mode=ms.GRAPH_MODE)
    model = GPT.from_pretrained(folder)
    ids = prompts(args)

    def call():
        return model.generate(ids, max_new_tokens=args.new_tokens, temperature=0)

    return timed(call, args.repeats)


def run_transformers(folder: str, args) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count())
    model = hf_class(args.family)[1].from_pretrained(folder).eval()
    ids = torch.tensor(prompts(args))

    def call():
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens,
                                 min_new_tokens=args.new_tokens, do_sample=False, use_cache=True, pad_token_id=0)
        return out[:, ids.shape[1]:].tolist()

    return timed(call, args.repeats)


def timed(call, repeats: int) -> dict:
    start = time.perf_counter()
    tokens = call()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    new = sum(len(row) for row in tokens)
    return {"tokens_per_s": new / statistics.median(times), "first_call_s": first,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=["openai-gpt", "gpt2"], default="gpt2")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        framework, folder = args.worker
        result = (run_gptft if framework == "gptft" else run_transformers)(folder, args)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as folder:
        write_weights(folder, args)
        results = {}
        for framework in ("gptft", "transformers"):
            env = dict(os.environ, GLOG_v="3")
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker", framework, folder],
                                 capture_output=True, text=True, env=env, check=True)
            results[framework] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, theirs = results["gptft"], results["transformers"]
    print(f"{args.family} size, batch {args.batch}, {args.prompt_tokens}-token prompt, {args.new_tokens} new tokens, greedy")
    for name, r in results.items():
        print(f"{name:>12}: {r['tokens_per_s']:8.1f} tokens/s   first call {r['first_call_s']:6.2f} s   "
              f"peak {r['peak_gb']:.2f} GB")
    print(f"speed ratio gptft / transformers: {ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x; "
          f"same tokens: {ours['tokens'] == theirs['tokens']}")


if __name__ == "__main__":
    main()
