"""Zero-shot answers from a language model alone: the heuristics of the GPT-1 paper's Section 5.

A label is scored by the log-probability of its verbalizer (a word or phrase) after the prompt (the paper's
SST-2 heuristic appends "very" and compares "positive" with "negative"); a multiple-choice answer by the
mean log-probability of its tokens after the context (the paper's RACE and DPRD heuristic). The highest
score wins. Nothing is trained.
"""

from typing import Sequence

import numpy as np
from mindspore import Tensor, nn, ops

from ..errors import ConfigError
from ..model.layers import attached_cell
from .task import Task

# Sequences are padded to a multiple of this, so a split compiles a few graphs, not one per length.
LENGTH_STEP = 32


class ContinuationScorer(nn.Cell):
    """Sum of the log-probabilities of `targets` `(B, T)` at the positions `mask` marks, for a GPT's
    next-token predictions over `ids` `(B, T)`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def construct(self, ids, targets, mask):
        logits = self.model.lm_logits(self.model(ids))  # (B, T, vocab)
        log_probs = ops.log_softmax(logits, -1)
        picked = ops.gather_elements(log_probs, -1, targets.expand_dims(-1)).squeeze(-1)  # (B, T)
        return (picked * mask).sum(-1)


def score_continuations(model, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 16) -> np.ndarray:
    """`(sum of log-probabilities, token count)` of each continuation given its prefix, as a `(N, 2)` array.

    A prefix that leaves no room in the model's context loses tokens from its start; the continuation is
    always scored whole."""
    block = model.config.block_size
    rows = []
    for prefix, continuation in pairs:
        if not prefix or not continuation:
            raise ConfigError("zero-shot scoring needs a non-empty prompt and a non-empty continuation")
        if len(continuation) >= block:
            raise ConfigError(f"a continuation of {len(continuation)} tokens does not fit the model's {block} positions")
        prefix = prefix[-(block + 1 - len(continuation)):]
        rows.append((prefix + continuation, len(prefix)))
    scorer = attached_cell(model, ContinuationScorer)
    was_training = model.training
    scorer.set_train(False)
    scores = np.zeros((len(rows), 2))
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            longest = max(len(sequence) - 1 for sequence, _ in chunk)
            T = min(-(-longest // LENGTH_STEP) * LENGTH_STEP, block)
            ids, targets, mask = (np.zeros((len(chunk), T), np.int32), np.zeros((len(chunk), T), np.int32),
                                  np.zeros((len(chunk), T), np.float32))
            for row, (sequence, prefix_length) in enumerate(chunk):
                n = len(sequence) - 1
                ids[row, :n], targets[row, :n] = sequence[:-1], sequence[1:]
                mask[row, prefix_length - 1:n] = 1.0  # the positions that predict the continuation's tokens
            scores[start:start + len(chunk), 0] = scorer(Tensor(ids), Tensor(targets), Tensor(mask)).asnumpy()
            scores[start:start + len(chunk), 1] = mask.sum(-1)
    finally:
        model.set_train(was_training)  # scoring never leaves a model in another mode than it found it
    return scores


def fill(template: str, fields: dict) -> str:
    """`template` with the task's fields in braces; an empty template joins the fields with spaces."""
    if not template:
        return " ".join(fields.values())
    return template.format(**fields)


def zero_shot_scores(model, tokenizer, task: Task, fields: dict, template: str, verbalizers: dict,
                     answer_prefix: str = " ", batch_size: int = 16) -> np.ndarray:
    """One row of scores per example (`fields`: the task's fields, a list per field, as `Examples` holds
    them): the log-probability of each label's verbalizer after the prompt, or the mean log-probability
    of each answer's tokens after the context."""
    count = len(next(iter(fields.values())))
    prompt_fields = [name for name in task.fields if name != "choices"]
    prompts = [fill(template, {name: fields[name][i] for name in prompt_fields}) for i in range(count)]
    prompt_ids = tokenizer.encode_batch(prompts)
    if task.kind == "multiple_choice":
        answers = [tokenizer.encode_batch([answer_prefix + choice for choice in fields["choices"][i]])
                   for i in range(count)]
        pairs = [(prompt_ids[i], answer) for i in range(count) for answer in answers[i]]
        scored = score_continuations(model, pairs, batch_size)
        means, rows, at = scored[:, 0] / scored[:, 1], [], 0
        for i in range(count):
            rows.append(means[at:at + len(answers[i])])
            at += len(answers[i])
        width = max(len(r) for r in rows)
        return np.array([np.pad(r, (0, width - len(r)), constant_values=-np.inf) for r in rows])
    label_ids = tokenizer.encode_batch([verbalizers[label] for label in task.labels])
    pairs = [(prompt_ids[i], words) for i in range(count) for words in label_ids]
    return score_continuations(model, pairs, batch_size)[:, 0].reshape(count, len(task.labels))
