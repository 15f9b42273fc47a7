"""The GPT-1 paper's Section 5 on the demo data: layer transfer, zero-shot during pre-training, ablations.

    python examples/ablations.py --output-dir runs/ablations --seeds 0 1 2

1. Pre-trains the demo's model once (`demo_data/pretrain.yaml` and its seed, 42), keeping a checkpoint every
   `--checkpoint-every` steps.
2. Zero-shot: scores the test sentences with the language model alone at every kept checkpoint (the
   paper's sentiment heuristic: the prompt "<sentence> very", then " good" against " bad").
3. Fine-tunes on the demo's sentiment task (`demo_data/finetune.yaml`), once per seed, as: the full recipe
   (λ = 0.5, every layer transferred), without the auxiliary LM loss (λ = 0), from scratch (random weights,
   the same tokenizer), and with only the embeddings and the first k blocks transferred, k = 0 .. L-1.
   Each fine-tune is its own `gptft train` process.
4. Writes `results.json`, `table.md` (test accuracy, mean ± sd over seeds) and `figure.png`: test accuracy
   against the number of transferred blocks (the paper's Figure 2, left) and zero-shot accuracy against
   pre-training steps (Figure 2, right).

`--pretrain-override` and `--finetune-override` (repeatable, `section.key=value`) change the two configs,
e.g. to shrink everything for a quick look.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from gptft import GPT, PretrainConfig, Tokenizer, load_config
from gptft.commands.demo import DATA, write_demo_files
from gptft.data.loading import Examples
from gptft.model.layers import named_parameters
from gptft.tasks import Task
from gptft.tasks.zeroshot import zero_shot_scores
from gptft.training import checkpoints as ckpt

TEMPLATE, VERBALIZERS = "{text} very", {"negative": " bad", "positive": " good"}


def gptft(*args: str) -> str:
    """Run a `gptft` command in its own process (each run's compiled graphs leave with it)."""
    done = subprocess.run([sys.executable, "-m", "gptft", *args], capture_output=True, text=True,
                          env=dict(os.environ, GLOG_v="3"))
    if done.returncode != 0:
        raise SystemExit(f"gptft {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def pretrain(out: Path, data: dict, every: int, overrides: list[str]) -> Path:
    """The demo's pre-training with a checkpoint kept every `every` steps; returns its folder."""
    folder = out / "pretrain"
    if not (folder / "model" / "model.safetensors").exists():
        gptft("pretrain", str(DATA / "pretrain.yaml"), "--output-dir", str(folder), f"--data.files=[{data['pretrain']}]",
              f"--train.save_every={every}", "--train.keep_last=1000", *[f"--{o}" for o in overrides])
    return folder


def test_sentences(data: dict) -> Examples:
    rows = [json.loads(line) for line in Path(data["test"]).read_text(encoding="utf-8").splitlines()]
    return Examples({"text": [r["text"] for r in rows]}, [r["label"] for r in rows], [r["id"] for r in rows], "test")


def zero_shot_curve(pre: Path, test: Examples) -> list[dict]:
    """Zero-shot test accuracy at step 0 (the initial weights) and at every kept pre-training checkpoint."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE)
    tokenizer = Tokenizer.from_pretrained(pre / "model")
    model = GPT.from_pretrained(pre / "model")
    task = Task("classification", labels=("negative", "positive"))
    labels = np.array(test.labels)
    config = load_config(PretrainConfig, pre / "config.yaml")
    points = []
    initial = GPT(model.config, seed=config.train.seed)  # what pre-training started from
    for step, checkpoint in [(0, None)] + [(int(c.name.split("-")[1]), c) for c in ckpt.list_checkpoints(pre / "checkpoints")]:
        if checkpoint is None:
            source = initial
        else:  # the LM loss cell's weights, named model.<parameter>
            ckpt.load_checkpoint(checkpoint, {f"model.{n}": p for n, p in named_parameters(model).items()},
                                 allow_extra=True)
            source = model
        scores = zero_shot_scores(source, tokenizer, task, test.fields, TEMPLATE, VERBALIZERS, batch_size=64)
        points.append({"step": step, "accuracy": float((task.predict(scores) == labels).mean())})
        print(f"zero-shot at pre-training step {step}: {points[-1]['accuracy']:.4f}", flush=True)
    return points


def variants(pre: Path) -> dict:
    """Name -> the `gptft train` overrides of each fine-tune."""
    shape = json.loads((pre / "model" / "config.json").read_text())
    layers = shape["n_layer"]
    config = load_config(PretrainConfig, pre / "config.yaml")
    preset = ", ".join(f"{k}: {v}" for k, v in config.model.config.items())
    found = {
        "full (λ = 0.5)": [f"--model.pretrained={pre / 'model'}"],
        "no auxiliary LM loss (λ = 0)": [f"--model.pretrained={pre / 'model'}", "--train.lm_coef=0"],
        "from scratch": [f"--model={{preset: {config.model.preset}, config: {{{preset}}}}}",
                         f"--tokenizer={pre / 'model'}"],
    }
    for k in range(layers):
        found[f"transfer {k} of {layers} blocks"] = [f"--model.pretrained={pre / 'model'}",
                                                     f"--model.transfer_layers={k}"]
    return found


def fine_tune(out: Path, data: dict, name: str, overrides: list[str], seed: int, extra: list[str]) -> float:
    folder = out / "runs" / f"{name.split(' (')[0].replace(' ', '-')}-seed{seed}"
    metrics = folder / "metrics.jsonl"
    if not metrics.exists() or '"split": "test"' not in metrics.read_text():
        gptft("train", str(DATA / "finetune.yaml"), "--output-dir", str(folder), f"--data.dataset={data['train'].parent}",
              f"--train.seed={seed}", *overrides, *[f"--{o}" for o in extra])
    test = [json.loads(line) for line in metrics.read_text().splitlines() if '"split": "test"' in line][-1]
    print(f"{name}, seed {seed}: test accuracy {test['accuracy']:.4f}", flush=True)
    return test["accuracy"]


def summary(runs: dict) -> str:
    lines = ["| fine-tune | test accuracy, mean ± sd | per seed |", "|---|---|---|"]
    for name, scores in runs.items():
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        lines.append(f"| {name} | {statistics.mean(scores):.3f} ± {spread:.3f} | "
                     f"{' / '.join(f'{s:.3f}' for s in scores)} |")
    return "\n".join(lines) + "\n"


def figure(runs: dict, curve: list[dict], layers: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    transferred = [runs[f"transfer {k} of {layers} blocks"] for k in range(layers)] + [runs["full (λ = 0.5)"]]
    means, sds = [np.mean(s) for s in transferred], [np.std(s, ddof=1) if len(s) > 1 else 0 for s in transferred]
    left.errorbar(range(layers + 1), means, yerr=sds, marker="o", capsize=3, label="transferred blocks")
    left.axhline(np.mean(runs["from scratch"]), color="grey", linestyle="--", label="from scratch")
    left.set(xlabel="blocks transferred from pre-training", ylabel="test accuracy", title="layer transfer",
             xticks=range(layers + 1))
    left.legend()
    right.plot([p["step"] for p in curve], [p["accuracy"] for p in curve], marker="o", label="zero-shot")
    right.axhline(curve[0]["accuracy"], color="grey", linestyle=":", label="initial weights")
    right.set(xlabel="pre-training steps", ylabel="test accuracy", title='zero-shot: "<sentence> very" good / bad')
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="runs/ablations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--checkpoint-every", type=int, default=100, help="pre-training steps between checkpoints")
    parser.add_argument("--pretrain-override", action="append", default=[])
    parser.add_argument("--finetune-override", action="append", default=[])
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    data = write_demo_files(out / "data")
    pre = pretrain(out, data, args.checkpoint_every, args.pretrain_override)
    curve = zero_shot_curve(pre, test_sentences(data))
    runs = {name: [fine_tune(out, data, name, overrides, seed, args.finetune_override) for seed in args.seeds]
            for name, overrides in variants(pre).items()}
    layers = json.loads((pre / "model" / "config.json").read_text())["n_layer"]
    results = {"seeds": args.seeds, "fine_tune": runs, "zero_shot": curve}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(summary(runs))
    figure(runs, curve, layers, out / "figure.png")
    print(summary(runs) + f"figure in {out / 'figure.png'}")
    return results


if __name__ == "__main__":
    main()
