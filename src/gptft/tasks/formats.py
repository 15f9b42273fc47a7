"""The GPT-1 input formats (Radford et al. 2018, Figure 1) as pure functions over token ids.

Every task becomes one or more token sequences that start with the start token and end with the extract
token; the task head reads the final hidden state at the extract token:

- classification   `[start] text [extract]`
- entailment       `[start] premise [delim] hypothesis [extract]`
- similarity       `[start] A [delim] B [extract]` and `[start] B [delim] A [extract]` (no natural order)
- multiple choice  `[start] context [delim] answer_k [extract]` for every answer k

`pack` stacks examples into one batch shape for all tasks: ids `(B, S, T)`, extract positions `(B, S)`,
an LM mask `(B, S, T)` over real tokens, with S = 1, 1, 2 and K. Sequences are right-padded; a padded
choice has extract position -1. Nothing here imports MindSpore.

Truncation always keeps the special tokens. A single text keeps its head, its tail, or both
(`head_tail`: the first quarter of the budget from the start, the rest from the end, since long reviews
state their verdict at both ends; Sun et al. 2019 found head+tail best on IMDb). A pair either removes
tokens from the end of the longer part until it fits (`longest_first`, BERT's rule, the default) or cuts
only the first part, from its start, keeping the second whole (`first`: a multiple-choice context loses its
oldest sentences, never the answer); an example whose second part alone is too long is then an error.
"""

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

TRUNCATIONS = ("head", "tail", "head_tail")  # one text
PAIR_TRUNCATIONS = ("longest_first", "first")  # two parts


@dataclass(frozen=True)
class TaskTokens:
    """Ids of the three task tokens (new embedding rows, learned during fine-tuning)."""

    start: int
    delimiter: int
    extract: int

    @classmethod
    def of(cls, tokenizer) -> "TaskTokens":
        return cls(tokenizer.start_id, tokenizer.delimiter_id, tokenizer.extract_id)


class SequenceTooLong(ValueError):
    """The special tokens alone do not fit in the maximum length."""


def truncate_single(ids: Sequence[int], budget: int, mode: str = "head_tail") -> list[int]:
    """Shorten one text to `budget` tokens, keeping its head, its tail, or both."""
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    if mode == "head":
        return ids[:budget]
    if mode == "tail":
        return ids[len(ids) - budget:] if budget else []
    if mode == "head_tail":
        head = budget // 4
        return ids[:head] + (ids[len(ids) - (budget - head):] if budget - head else [])
    raise ValueError(f"unknown truncation {mode!r}; choose one of {', '.join(TRUNCATIONS)}")


def truncate_pair(first: Sequence[int], second: Sequence[int], budget: int,
                  mode: str = "longest_first") -> tuple[list[int], list[int]]:
    """Shorten two parts to `budget` tokens in total (`longest_first` or `first`, see the module notes)."""
    first, second = list(first), list(second)
    excess = len(first) + len(second) - budget
    if excess <= 0:
        return first, second
    if mode == "first":
        if len(second) > budget:
            raise SequenceTooLong(f"the second part alone has {len(second)} tokens, more than the {budget} left "
                                  "after the special tokens, even with the first part cut to nothing")
        return first[excess:], second
    if mode != "longest_first":
        raise ValueError(f"unknown pair truncation {mode!r}; choose one of {', '.join(PAIR_TRUNCATIONS)}")
    # Cut the longer part down to the shorter one's length, then both alternately (longer first).
    longer, shorter = (first, second) if len(first) >= len(second) else (second, first)
    cut = min(excess, len(longer) - len(shorter))
    del longer[len(longer) - cut:]
    excess -= cut
    cut_longer = (excess + 1) // 2
    del longer[len(longer) - cut_longer:]
    del shorter[len(shorter) - (excess - cut_longer):]
    return first, second


def _check_room(max_length: int, specials: int, what: str) -> int:
    budget = max_length - specials
    if budget < 0:
        raise SequenceTooLong(f"max_length {max_length} leaves no room for the {specials} special tokens of {what}")
    return budget


def classification(text: Sequence[int], tokens: TaskTokens, max_length: int, truncation: str = "head_tail") -> list[list[int]]:
    """`[start] text [extract]`, one sequence."""
    budget = _check_room(max_length, 2, "classification")
    return [[tokens.start, *truncate_single(text, budget, truncation), tokens.extract]]


def entailment(premise: Sequence[int], hypothesis: Sequence[int], tokens: TaskTokens, max_length: int,
               truncation: str = "longest_first") -> list[list[int]]:
    """`[start] premise [delim] hypothesis [extract]`, one sequence."""
    premise, hypothesis = truncate_pair(premise, hypothesis, _check_room(max_length, 3, "entailment"), truncation)
    return [[tokens.start, *premise, tokens.delimiter, *hypothesis, tokens.extract]]


def similarity(text_a: Sequence[int], text_b: Sequence[int], tokens: TaskTokens, max_length: int,
               truncation: str = "longest_first") -> list[list[int]]:
    """Both orderings, `[start] A [delim] B [extract]` and `[start] B [delim] A [extract]`."""
    a, b = truncate_pair(text_a, text_b, _check_room(max_length, 3, "similarity"), truncation)
    return [[tokens.start, *a, tokens.delimiter, *b, tokens.extract],
            [tokens.start, *b, tokens.delimiter, *a, tokens.extract]]


def multiple_choice(context: Sequence[int], answers: Sequence[Sequence[int]], tokens: TaskTokens,
                    max_length: int, truncation: str = "longest_first") -> list[list[int]]:
    """`[start] context [delim] answer_k [extract]` for every answer k (each pair truncated on its own)."""
    budget = _check_room(max_length, 3, "multiple choice")
    sequences = []
    for answer in answers:
        ctx, ans = truncate_pair(context, answer, budget, truncation)
        sequences.append([tokens.start, *ctx, tokens.delimiter, *ans, tokens.extract])
    return sequences


class Batch(NamedTuple):
    """One batch in the shape every task shares (all NumPy).

    ids: int32 `(B, S, T)`, right-padded with `pad_id`.
    positions: int32 `(B, S)`, index of each sequence's extract token; -1 for a padded choice.
    lm_mask: float32 `(B, S, T)`, 1.0 on real tokens (the LM loss predicts each real token but the first).
    labels: int32 `(B,)` class or answer index, or float32 `(B,)` scores for regression.
    """

    ids: np.ndarray
    positions: np.ndarray
    lm_mask: np.ndarray
    labels: np.ndarray

    @property
    def choice_mask(self) -> np.ndarray:
        """1.0 for real sequences, 0.0 for padded choices, `(B, S)`."""
        return (self.positions >= 0).astype(np.float32)


def pack(examples: Sequence[Sequence[Sequence[int]]], labels: Sequence, *, pad_id: int = 0,
         length: int | None = None, num_sequences: int | None = None, label_dtype=np.int32) -> Batch:
    """Stack formatted examples (each a list of S_i sequences) into a `Batch`.

    Args:
        examples: per example, the sequences one of the format functions returned.
        labels: one label per example.
        pad_id: the id written after each sequence's end; no output ever reads it.
        length: T, at least the longest sequence (a bucket length); default the longest sequence.
        num_sequences: S, at least the most sequences of any example; default that maximum.
        label_dtype: `np.int32` for classes and answers, `np.float32` for regression scores.
    """
    longest = max(len(seq) for example in examples for seq in example)
    most = max(len(example) for example in examples)
    T = longest if length is None else length
    S = most if num_sequences is None else num_sequences
    if longest > T or most > S:
        raise ValueError(f"a sequence of {longest} tokens or {most} sequences does not fit in (S={S}, T={T})")
    B = len(examples)
    ids = np.full((B, S, T), pad_id, np.int32)
    positions = np.full((B, S), -1, np.int32)
    lm_mask = np.zeros((B, S, T), np.float32)
    for b, example in enumerate(examples):
        for s, seq in enumerate(example):
            ids[b, s, :len(seq)] = seq
            positions[b, s] = len(seq) - 1
            lm_mask[b, s, :len(seq)] = 1.0
    return Batch(ids, positions, lm_mask, np.asarray(labels, dtype=label_dtype).reshape(B))
