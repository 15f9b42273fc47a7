"""`gptft demo`: the GPT recipe end to end, offline, on two CPU cores in minutes.

1. Real movie-review sentences (Rotten Tomatoes snippets, shipped in `demo_data/`, see SOURCES.md) are
   written out as train / validation / test files; the unlabeled pre-training text is the train and
   validation sentences plus other review text, never the test sentences.
2. A byte-level BPE tokenizer is trained on that text, and a small GPT is pre-trained on it
   (`demo_data/pretrain.yaml`), unless `from_scratch`. Pre-training runs as its own `gptft pretrain`
   process: the memory its compiled graphs hold is never given back while a process lives
   (docs/performance-cpu.md#graph-memory), so it ends before fine-tuning compiles its own graphs.
3. The model is fine-tuned on sentiment with the auxiliary LM loss (`demo_data/finetune.yaml`) and tested
   on the held-out test sentences. `from_scratch` runs the same fine-tune from random weights, so the two
   test accuracies show what pre-training adds.
"""

import gzip
import importlib.resources
import json
from pathlib import Path

from ..data.text import read_documents
from ..errors import ConfigError
from ..model.tokenizer import train_bpe
from .configfile import load_config
from .schema import PretrainConfig, RunConfig
from .stage import run_stage

DATA = importlib.resources.files("gptft") / "demo_data"


def _read_gzip(name: str) -> str:
    return gzip.decompress((DATA / name).read_bytes()).decode("utf-8")


def write_demo_files(folder: Path) -> dict:
    """The labeled splits as JSONL files and the pre-training text; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    records = [json.loads(line) for line in _read_gzip("reviews.jsonl.gz").splitlines()]
    paths = {}
    for split in ("train", "validation", "test"):
        paths[split] = folder / f"{split}.jsonl"
        rows = [{"id": i, "text": r["text"], "label": r["label"]} for i, r in enumerate(records) if r["split"] == split]
        paths[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    paths["pretrain"] = folder / "pretrain.txt"
    unlabeled = [r["text"] for r in records if r["split"] != "test"] + _read_gzip("unlabeled.txt.gz").splitlines()
    paths["pretrain"].write_text("\n".join(unlabeled) + "\n", encoding="utf-8")
    return paths


def run_demo(output_dir, from_scratch: bool = False, seed: int = 0, pretrain_overrides=(),
             finetune_overrides=(), resume: bool = False):
    """Run the demo into `output_dir`; returns the fine-tuning result (`result.test["accuracy"]`). With
    `resume`, a demo stopped by a signal continues where each stage stopped."""
    out = Path(output_dir)
    if (out / "checkpoints").is_dir() and not resume:
        raise ConfigError(f"{out} already holds a demo run; choose another --output-dir or pass --resume")
    paths = write_demo_files(out / "data")
    pre_overrides = [f"data.files=[{paths['pretrain']}]", f"output_dir={out / 'pretrain'}", f"train.seed={seed}",
                     *pretrain_overrides]
    pre_config = load_config(PretrainConfig, DATA / "pretrain.yaml", pre_overrides)  # refuse bad overrides here
    if from_scratch:
        # The tokenizer is still learned from the unlabeled text; only the weights start at random.
        tokenizer = train_bpe(read_documents(pre_config.data), pre_config.train_tokenizer.vocab_size,
                              pre_config.train_tokenizer.min_frequency)
        tokenizer.save_pretrained(out / "tokenizer")
        shape = ", ".join(f"{k}: {v}" for k, v in pre_config.model.config.items())
        model = [f"model={{preset: {pre_config.model.preset}, config: {{{shape}}}}}", f"tokenizer={out / 'tokenizer'}"]
    else:
        run_stage(["pretrain", str(DATA / "pretrain.yaml"), *(f"--{o}" for o in pre_overrides),
                   *(["--resume"] if resume else [])])
        model = [f"model.pretrained={out / 'pretrain' / 'model'}"]
    config = load_config(RunConfig, DATA / "finetune.yaml",
                         [*model, f"data.dataset={out / 'data'}", f"output_dir={out}", f"train.seed={seed}",
                          *finetune_overrides])
    from .finetune import train  # MindSpore loads here, after the pre-training process has ended

    return train(config, resume=resume)
