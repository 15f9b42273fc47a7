"""A task head written outside the library: mean pooling over the text instead of the extract token.

The built-in heads read the hidden state at the extract token, as the GPT-1 paper does. Averaging the
hidden states of every real token up to the extract token is a common alternative for long texts. A
head is any `nn.Cell` taking hidden states `(B, S, T, C)` and extract positions `(B, S)`; registering it
under a name lets a YAML config (`task: {head: mean_pool}`) or a `Task` find it. Nothing in gptft changes.

    python examples/custom_head.py CONFIG.yaml [--output-dir DIR] [--section.key=value ...]

runs `gptft train` with `task.head=mean_pool`.
"""

import sys

import mindspore as ms
from mindspore import nn, ops

from mindspore.common.initializer import Normal, initializer

from gptft import Dropout, register_head
from gptft.commands.cli import main
from gptft.model.layers import Linear


class MeanPoolHead(nn.Cell):
    """Mean of the hidden states from the start token through the extract token, then dropout and a linear layer.

    With S sequences per example (similarity's two orderings), the pooled vectors are summed, as the
    built-in similarity head sums its extract states. Returns `(B, num_outputs)`.
    """

    def __init__(self, n_embd: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = Linear(initializer(Normal(0.02), (num_outputs, n_embd), ms.float32),
                             initializer("zeros", (num_outputs,), ms.float32))

    def construct(self, hidden, positions):
        B, S, T, C = hidden.shape
        steps = ops.arange(0, T, dtype=ms.int32).reshape(1, 1, T)
        mask = (steps <= positions.expand_dims(-1)).astype(hidden.dtype)  # (B, S, T): real tokens
        pooled = (hidden * mask.expand_dims(-1)).sum(axis=2) / ops.maximum(mask.sum(axis=2, keepdims=True), 1.0)
        return self.linear(self.dropout(pooled.sum(axis=1)))  # (B, num_outputs)


register_head("mean_pool", MeanPoolHead)

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:], "--task.head=mean_pool"]))
