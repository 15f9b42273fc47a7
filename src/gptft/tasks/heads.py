"""Task heads, the extract-token gather they share, and the name registry YAML configs use.

A head is any `nn.Cell` whose `construct(hidden, positions)` takes the backbone's hidden states
`(B, S, T, C)` and the extract positions `(B, S)` and returns logits. Heads pool at the extract token's
position, never at "the last non-pad token": GPT vocabularies have no pad token, so there is nothing to
find. A padded multiple-choice sequence has position -1; `gather_extract` reads position 0 there and
`mask_padded_choices` makes sure such a choice can never win.

Every built-in head applies dropout 0.1 before its linear layer, as the paper's classifier does.
"""

from typing import Callable

import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Normal, initializer

from ..errors import ConfigError
from ..model.layers import Dropout, Linear

# The score a padded choice gets: softmax gives it zero probability and argmax never picks it.
PADDED_CHOICE_SCORE = -1e9


def gather_extract(hidden, positions):
    """Hidden states at the extract tokens: `(B, S, T, C)`, `(B, S)` -> `(B, S, C)`."""
    B, S, T, C = hidden.shape
    rows = ops.arange(0, B * S, dtype=ms.int32) * T + ops.maximum(positions.reshape(-1), 0)
    return ops.gather(hidden.reshape(B * S * T, C), rows, 0).reshape(B, S, C)


def mask_padded_choices(scores, positions):
    """Scores `(B, S)` with every padded sequence (position -1) set to a score that can never win."""
    return ops.select(positions >= 0, scores, ops.full_like(scores, PADDED_CHOICE_SCORE))


def _linear(n_in: int, n_out: int) -> Linear:
    # N(0, 0.02) as the paper's classifier, zero bias; drawn from MindSpore's seeded generator (set_seed).
    return Linear(initializer(Normal(0.02), (n_out, n_in), ms.float32), initializer("zeros", (n_out,), ms.float32))


class ClassificationHead(nn.Cell):
    """One sequence per example (classification, entailment): extract state -> dropout -> linear.

    Returns `(B, num_outputs)` class logits (or a score, with `num_outputs=1`, for regression).
    """

    def __init__(self, n_embd: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = _linear(n_embd, num_outputs)

    def construct(self, hidden, positions):
        features = gather_extract(hidden, positions)[:, 0]  # (B, C)
        return self.linear(self.dropout(features))


class RegressionHead(ClassificationHead):
    """One score per example `(B, 1)`, trained with mean squared error (STS-B-style scores)."""

    def __init__(self, n_embd: int, num_outputs: int = 1, dropout: float = 0.1):
        if num_outputs != 1:
            raise ConfigError(f"a regression head has one output, not {num_outputs}")
        super().__init__(n_embd, 1, dropout)


class SimilarityHead(nn.Cell):
    """Two orderings per example: their extract states added element-wise, then dropout and one linear layer.

    The sum makes the output independent of which text came first. Returns `(B, num_outputs)`.
    """

    def __init__(self, n_embd: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = _linear(n_embd, num_outputs)

    def construct(self, hidden, positions):
        features = gather_extract(hidden, positions).sum(axis=1)  # (B, C)
        return self.linear(self.dropout(features))


class MultipleChoiceHead(nn.Cell):
    """One sequence per answer: one score each, `(B, K)`; the loss is a softmax over the answers."""

    def __init__(self, n_embd: int, num_outputs: int = 1, dropout: float = 0.1):
        super().__init__()
        if num_outputs != 1:
            raise ConfigError(f"a multiple-choice head scores each answer with one output, not {num_outputs}")
        self.dropout = Dropout(dropout)
        self.linear = _linear(n_embd, 1)

    def construct(self, hidden, positions):
        features = self.dropout(gather_extract(hidden, positions))  # (B, K, C)
        scores = self.linear(features).squeeze(-1)  # (B, K)
        return mask_padded_choices(scores, positions)


HeadFactory = Callable[..., nn.Cell]

HEADS: dict[str, HeadFactory] = {
    "classification": ClassificationHead,
    "regression": RegressionHead,
    "similarity": SimilarityHead,
    "multiple_choice": MultipleChoiceHead,
}


def register_head(name: str, factory: HeadFactory) -> None:
    """Make a head buildable by name (from YAML): `factory(n_embd, num_outputs, dropout)` returns the cell."""
    if name in HEADS and HEADS[name] is not factory:
        raise ConfigError(f"a different head is already registered as {name!r}")
    HEADS[name] = factory


def head_factory(name: str, where: str = "") -> HeadFactory:
    """The factory registered as `name`; a ConfigError (naming the key `where`, if given) listing the
    registered heads if there is none."""
    if name not in HEADS:
        raise ConfigError(f"{where + ': ' if where else ''}unknown head {name!r}; registered heads: "
                          f"{', '.join(sorted(HEADS))}")
    return HEADS[name]
