"""A task model: one GPT backbone and one head, over the `(B, S, T)` batch shape every task shares.

An exported task model is a folder holding the backbone in the Hugging Face layout (`config.json`,
`model.safetensors`), `head.safetensors` and `task.json`; `gptft train` adds `tokenizer.json` beside them,
and a LoRA run its adapters (`adapter.safetensors`, `adapter.json`). An adapter-only folder has no
backbone files: its `adapter.json` names the base model the adapters are loaded onto.
"""

import json
from dataclasses import asdict
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..errors import ModelFileError
from ..model.gpt import GPT
from ..model.layers import named_parameters
from ..model.lora import ADAPTER_CONFIG, load_adapted
from .task import Task

HEAD_FILE, TASK_FILE = "head.safetensors", "task.json"


class TaskModel(nn.Cell):
    """Backbone plus head. Calling it on ids `(B, S, T)` and extract positions `(B, S)` returns the task logits.

    All S sequences of all B examples go through the backbone in one call, so similarity's two orderings
    and multiple choice's K answers cost one pass, not S.

    Args:
        backbone: a `GPT` whose embedding already has rows for the task tokens.
        head: any cell with `construct(hidden (B, S, T, C), positions (B, S)) -> logits`.
        task: the `Task` the head was built for; needed only to export the model.

    Example:
        >>> model = TaskModel.for_task(GPT.from_pretrained("openai-gpt"), task, tokenizer)
        >>> logits = model(ids, positions)      # (B, 2)
        >>> lm = model.backbone.lm_logits(model.hidden(ids))   # (B, S, T, vocab), when needed
    """

    def __init__(self, backbone: GPT, head: nn.Cell, task: Task | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.task = task
        self.any_length = False
        self.set_train(False)  # keep the compile phase in step with the mode (see GPT.__init__)

    @classmethod
    def for_task(cls, backbone: GPT, task: Task, tokenizer, dropout: float = 0.1, seed: int = 0) -> "TaskModel":
        """Grow the backbone's embedding for the task tokens (new rows N(0, 0.02)) and attach the task's head.

        `tokenizer` gives the vocabulary size, task tokens included; `seed` draws the new embedding rows
        and the head's weights.
        """
        if tokenizer.vocab_size < backbone.config.vocab_size:
            raise ModelFileError(f"the tokenizer has {tokenizer.vocab_size} ids (task tokens included) but the "
                                 f"model embeds {backbone.config.vocab_size}: they were not made for each other")
        backbone.resize_token_embeddings(tokenizer.vocab_size, seed=seed)
        ms.set_seed(seed)
        return cls(backbone, task.build_head(backbone.config.n_embd, dropout), task)

    def hidden(self, ids, keep=None):
        """Final hidden states `(B, S, T, C)` of ids `(B, S, T)`; `keep`: the backbone's dropout masks for
        `B * S` sequences, or None (see `GPT.draw_keep_masks`)."""
        B, S, T = ids.shape
        return self.backbone(ids.reshape(B * S, T), keep).reshape(B, S, T, -1)

    def construct(self, ids, positions):
        return self.head(self.hidden(ids), positions)

    def compile_for_any_length(self) -> None:
        """Compile one forward graph for batches of every shape instead of one per batch length.

        Each compiled graph holds its own memory for the life of the process; see
        `TrainConfig.dynamic_length` for the trade.
        """
        if not self.any_length:
            self.set_inputs(Tensor(shape=[None, None, None], dtype=ms.int32), Tensor(shape=[None, None], dtype=ms.int32))
            self.any_length = True

    def save_pretrained(self, folder) -> None:
        """Write the backbone (Hugging Face layout), `head.safetensors` and `task.json` into `folder`."""
        if self.task is None:
            raise ValueError("this TaskModel was built without its Task, so task.json cannot be written")
        folder = Path(folder)
        self.backbone.save_pretrained(folder)
        head = {name: np.ascontiguousarray(p.asnumpy()) for name, p in named_parameters(self.head, weights_only=True).items()}
        save_file(head, str(folder / HEAD_FILE))
        (folder / TASK_FILE).write_text(json.dumps(asdict(self.task), indent=1) + "\n")

    @classmethod
    def from_pretrained(cls, folder) -> "TaskModel":
        """Read a folder written by `save_pretrained` (or `gptft train`'s `model/`).

        Raises:
            ModelFileError: `task.json` is missing, or a file does not fit the task's head or the backbone.
        """
        folder = Path(folder)
        if not (folder / TASK_FILE).is_file():
            raise ModelFileError(f"{folder} has no {TASK_FILE}: it is not a fine-tuned gptft model folder")
        task = Task.from_dict(json.loads((folder / TASK_FILE).read_text()))
        # An adapter-only folder (`gptft export --adapter-only`) names its base model instead of holding one.
        adapter_only = (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()
        backbone = load_adapted(folder) if adapter_only else GPT.from_pretrained(folder)
        model = cls(backbone, task.build_head(backbone.config.n_embd), task)
        try:
            saved = load_file(str(folder / HEAD_FILE))
        except (SafetensorError, OSError) as error:
            raise ModelFileError(f"{folder / HEAD_FILE}: unreadable ({error})") from None
        params = named_parameters(model.head, weights_only=True)
        if set(saved) != set(params) or any(saved[k].shape != tuple(p.shape) for k, p in params.items()):
            raise ModelFileError(f"{folder / HEAD_FILE} does not fit a {task.head_name} head "
                                 f"(holds {sorted(saved)}, expected {sorted(params)})")
        for name, param in params.items():
            param.set_data(Tensor(saved[name]))
        return model
