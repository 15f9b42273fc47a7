"""`gptft export`: a run's fine-tuned model as MindIR for MindSpore serving, or as its adapters alone.

    >>> export("runs/sst2", "mindir")            # runs/sst2/mindir/model.mindir, tokenizer.json, task.json, serving.json
    >>> export("runs/sst2-lora", adapter_only=True)   # runs/sst2-lora/adapter/: a few megabytes

The MindIR graph is the task model's inference graph (backbone and head, dropout off) with every input
dimension dynamic: `ids` int32 `(batch, sequences, tokens)` and `positions` int32 `(batch, sequences)`, the
index of each sequence's extract token, and it returns the task logits. `serving_inputs` makes those
inputs from text with the tokenizer and task written beside it.
"""

import json
import shutil
from pathlib import Path

import mindspore as ms
from mindspore import Tensor

from ..errors import ConfigError, ModelFileError
from ..model.lora import ADAPTER_CONFIG, ADAPTER_FILE
from ..model.tokenizer import Tokenizer
from ..tasks.task import Task
from ..tasks.task_model import HEAD_FILE, TASK_FILE
from .inference import encode_rows, load_model_folder

FORMATS = ("hf", "mindir")
MINDIR_FILE, SERVING_FILE = "model.mindir", "serving.json"


def serving_inputs(folder, rows: list[dict], batch_size: int = 16) -> list[tuple]:
    """The MindIR graph's inputs for unlabeled rows (dicts with the task's fields as text), made with the
    tokenizer and task of an exported folder: `[(ids, positions, row numbers)]`, one tuple per batch."""
    folder = Path(folder)
    task = Task.from_dict(json.loads((folder / TASK_FILE).read_text()))
    batches, order = encode_rows(task, Tokenizer.from_pretrained(folder), rows, batch_size)
    found, start = [], 0
    for batch in batches:
        found.append((batch.ids, batch.positions, order[start:start + len(batch.ids)]))
        start += len(batch.ids)
    return found


def model_folder(run_or_model_dir) -> Path:
    """The exported model folder of a run (`RUN_DIR/model`), or the folder itself if it is one."""
    folder = Path(run_or_model_dir)
    for candidate in (folder, folder / "model"):
        if (candidate / TASK_FILE).is_file():
            return candidate
    raise ModelFileError(f"{folder} is neither a `gptft train` run folder with a finished model/ nor a model folder "
                         f"(no {TASK_FILE})")


def _fresh_output(output: Path) -> Path:
    """`output`, refused if it already holds files: an export never overwrites anything."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(f"{output} already exists and is not empty; choose another --output")
    output.mkdir(parents=True, exist_ok=True)
    return output


def export(run_dir, format: str = "hf", adapter_only: bool = False, output=None) -> Path:
    """Write the model of `run_dir` (a run folder or model folder) in `format`; returns the output folder.

    `hf`: the model folder as `gptft train` wrote it (merged weights in the Hugging Face layout), or with
    `adapter_only` the adapters, head, task and tokenizer of a LoRA run without the backbone (its
    `adapter.json` names the base model, which `gptft eval` / `predict` load it onto). `mindir`: the
    inference graph (see the module docstring). Default output: `RUN_DIR/adapter`, `RUN_DIR/mindir` or
    `RUN_DIR/export`.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if adapter_only and format != "hf":
        raise ConfigError("--adapter-only writes safetensors files; it does not combine with --format mindir")
    source = model_folder(run_dir)
    default = "adapter" if adapter_only else ("mindir" if format == "mindir" else "export")
    output = Path(output) if output else Path(run_dir) / default
    if adapter_only:
        if not (source / ADAPTER_CONFIG).is_file():
            raise ConfigError(f"{source} holds no adapters: the run did not train with train.lora (or built its "
                              "model from a preset, which an adapter cannot name)")
        kept = [p for p in source.iterdir() if p.name in (ADAPTER_CONFIG, ADAPTER_FILE, HEAD_FILE, TASK_FILE)
                or p.name.startswith("tokenizer")]
        output = _fresh_output(output)
        for path in kept:
            shutil.copy2(path, output / path.name)
        return output
    if format == "hf":
        load_model_folder(source)  # checks the folder before copying it
        output = _fresh_output(output)
        for path in source.iterdir():
            if path.is_file():
                shutil.copy2(path, output / path.name)
        return output
    return _export_mindir(source, output)


def _export_mindir(source: Path, output: Path) -> Path:
    model, tokenizer = load_model_folder(source)
    output = _fresh_output(output)
    ms.set_context(mode=ms.GRAPH_MODE)
    model.set_train(False)
    ids = Tensor(shape=[None, None, None], dtype=ms.int32)
    positions = Tensor(shape=[None, None], dtype=ms.int32)
    ms.export(model, ids, positions, file_name=str(output / MINDIR_FILE.removesuffix(".mindir")), file_format="MINDIR")
    tokenizer.save_pretrained(output)
    shutil.copy2(source / TASK_FILE, output / TASK_FILE)
    serving = {
        "inputs": [{"name": "ids", "dtype": "int32", "shape": ["batch", "sequences", "tokens"]},
                   {"name": "positions", "dtype": "int32", "shape": ["batch", "sequences"]}],
        "outputs": [{"name": "logits", "dtype": "float32",
                     "shape": ["batch", "sequences" if model.task.kind == "multiple_choice" else model.task.num_outputs]}],
        "max_tokens": model.backbone.config.block_size,
        "task": model.task.kind,
        "labels": list(model.task.labels or ()),
    }
    (output / SERVING_FILE).write_text(json.dumps(serving, indent=1) + "\n")
    return output
