"""Text generation with a key/value cache: one forward pass over the prompts, then one token a step.

The compiled graph takes the tokens of this call, their positions and the cache of every block's keys
and values, and returns the next-token logits and the updated cache. It has two shapes: the prompts
(padded to the longest) and one token per prompt, so a call compiles at most two graphs, whatever the
number of tokens it generates. Prompts of different lengths share a batch: every row keeps its own
position, its cache slots past that position are masked, and each new token overwrites the slot of a
padding token. Choosing the next token (greedy, temperature, top-k, top-p) happens on the host with a
seeded NumPy generator, so the same seed gives the same text.

The caches go in as `mindspore.mutable`: a plain tuple of tensors is a constant to MindSpore, which
then compiles the graph again at every step and may reuse one compiled for another tuple that lived at
the same address (wrong tokens, seen in this project's tests).
"""

from typing import Iterable, Sequence

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from ..errors import DataError
from .layers import attached_cell

# Added to the attention scores of cache slots a token may not see (as in the causal mask of `gpt.py`).
_MASKED = -1e9


class CachedForward(nn.Cell):
    """The graph a generation step runs: tokens at their positions through every block with its key/value
    cache, then the tied LM head on one picked position per row. Returns `(B, vocab)` logits and the
    updated caches (every block's keys, then values)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def construct(self, ids, positions, caches, write, bias, pick):
        hidden, updated = self.model(ids, None, (positions, caches, write, bias))
        return self.model.lm_logits(ops.matmul(pick, hidden)[:, 0]), updated  # (B, vocab)


def next_tokens(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0) -> np.ndarray:
    """One token per row of `logits` `(B, vocab)`: the most likely when `temperature` is 0, else a draw from
    the softmax of `logits / temperature` restricted to the `top_k` most likely tokens (0: all) and to the
    smallest set whose probability reaches `top_p`."""
    if temperature == 0:
        return logits.argmax(-1)
    scores = logits.astype(np.float64) / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = np.partition(scores, -top_k, axis=-1)[:, -top_k:].min(-1, keepdims=True)
        scores = np.where(scores < kth, -np.inf, scores)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, -1)
        # Keep a token while the tokens before it hold less than top_p: the smallest set that reaches it.
        keep_sorted = np.cumsum(sorted_probs, -1) - sorted_probs < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, -1)
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(-1, keepdims=True)
    draws = rng.random(len(probs))[:, None]
    return np.minimum((np.cumsum(probs, -1) < draws).sum(-1), probs.shape[-1] - 1)


def _check(model, prompts, max_new_tokens: int, temperature: float, top_k: int, top_p: float) -> list[list[int]]:
    config = model.config
    prompts = [[int(t) for t in p] for p in prompts]
    if not prompts or any(len(p) == 0 for p in prompts):
        raise DataError("generate needs at least one prompt, and every prompt at least one token")
    if max_new_tokens < 1:
        raise DataError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not (temperature >= 0 and top_k >= 0 and 0 < top_p <= 1):
        raise DataError(f"temperature must be >= 0, top_k >= 0 and top_p in (0, 1]; got {temperature}, {top_k}, "
                        f"{top_p}")
    bad = [t for p in prompts for t in p if not 0 <= t < config.vocab_size]
    if bad:
        raise DataError(f"token id {bad[0]} is outside the model's vocabulary (0..{config.vocab_size - 1})")
    longest = max(len(p) for p in prompts)
    if longest + max_new_tokens > config.block_size:
        raise DataError(f"a prompt of {longest} tokens plus {max_new_tokens} new tokens is longer than the model's "
                        f"{config.block_size} positions")
    return prompts


def generate(model, prompts: Sequence[Sequence[int]], max_new_tokens: int = 20, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, seed: int = 0, stop: Iterable[int] = ()) -> list[list[int]]:
    """The tokens `model` (a `GPT`) generates after each prompt; see `GPT.generate`."""
    prompts = _check(model, prompts, max_new_tokens, temperature, top_k, top_p)
    stop = {int(t) for t in stop}
    config = model.config
    B, P = len(prompts), max(len(p) for p in prompts)
    S = P + max_new_tokens  # cache slots: the longest prompt and every new token
    lengths = np.array([len(p) for p in prompts])
    ids = np.zeros((B, P), np.int32)
    for row, prompt in enumerate(prompts):
        ids[row, :len(prompt)] = prompt
    slots = np.arange(S)
    head_shape = (B, config.n_head, S, config.head_size)
    caches = ms.mutable(tuple(Tensor(np.zeros(head_shape, np.float32)) for _ in range(2 * config.n_layer)))
    # The prompts: token t goes to slot t and sees slots 0..t (padding after a prompt sees it, harmlessly).
    positions = np.broadcast_to(np.arange(P, dtype=np.int32), (B, P))
    write = np.broadcast_to(np.eye(S, P, dtype=np.float32), (B, 1, S, P))
    bias = np.where(slots[None, :] <= np.arange(P)[:, None], 0.0, _MASKED).astype(np.float32)
    bias = np.broadcast_to(bias, (B, 1, P, S))
    pick = (np.arange(P)[None, :] == lengths[:, None] - 1).astype(np.float32)[:, None, :]  # (B, 1, P)

    cell = attached_cell(model, CachedForward)
    was_training = model.training
    cell.set_train(False)
    rng = np.random.default_rng(seed)
    generated = [[] for _ in range(B)]
    done = np.zeros(B, bool)
    try:
        for step in range(max_new_tokens):
            logits, caches = cell(Tensor(np.ascontiguousarray(ids)), Tensor(np.ascontiguousarray(positions)), caches,
                                  Tensor(np.ascontiguousarray(write)), Tensor(np.ascontiguousarray(bias)),
                                  Tensor(pick))
            caches = ms.mutable(caches)
            tokens = next_tokens(logits.asnumpy(), rng, temperature, top_k, top_p)
            for row in np.flatnonzero(~done):
                if int(tokens[row]) in stop:
                    done[row] = True
                else:
                    generated[row].append(int(tokens[row]))
            if done.all() or step == max_new_tokens - 1:
                break
            # The next call: each row's new token at its own position, the slot of that position written.
            position = lengths + step
            ids = tokens.astype(np.int32)[:, None]
            positions = position.astype(np.int32)[:, None]
            write = (slots[None, :] == position[:, None]).astype(np.float32)[:, None, :, None]  # (B, 1, S, 1)
            bias = np.where(slots[None, :] <= position[:, None], 0.0, _MASKED).astype(np.float32)[:, None, None, :]
            pick = np.ones((B, 1, 1), np.float32)
    finally:
        model.set_train(was_training)
    return generated
