"""Small synthetic tasks a tiny GPT can learn in a few hundred steps, one per head.

Each is a rule about token ids (a keyword, a shared token, an answer holding the context's token), so a
model that learns it proves the whole path: format, backbone, extract gather, head, loss, optimizer.
"""

import numpy as np

from gptft.tasks.formats import TaskTokens
from gptft.tasks import Task
from gptft.training.trainer import ListSource

TOKENS = TaskTokens(99, 100, 101)
KEY = 7


def _text(rng, n, low=10, high=60):
    return [int(t) for t in rng.integers(low, high, n)]


def keyword(rng):
    text, label = _text(rng, 8), int(rng.integers(0, 2))
    if label:
        text[rng.integers(0, 8)] = KEY
    return {"text": text}, label


def keyword_count(rng):
    text = _text(rng, 8)
    count = int(rng.integers(0, 4))
    for position in rng.choice(8, count, replace=False):
        text[position] = KEY
    return {"text": text}, count / 3


def keyword_in_both(rng):
    """Entailment-shaped: 1 when premise and hypothesis both hold the keyword; needs both segments."""
    premise, hypothesis = _text(rng, 6), _text(rng, 3)
    label = int(rng.integers(0, 2))
    where = "both" if label else rng.choice(["premise", "hypothesis", "neither"])
    if where in ("both", "premise"):
        premise[rng.integers(0, 6)] = KEY
    if where in ("both", "hypothesis"):
        hypothesis[rng.integers(0, 3)] = KEY
    return {"premise": premise, "hypothesis": hypothesis}, label


def pair_keyword_count(rng):
    a, b = _text(rng, 5), _text(rng, 5)
    count_a, count_b = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    for text, count in ((a, count_a), (b, count_b)):
        for position in rng.choice(5, count, replace=False):
            text[position] = KEY
    return {"text_a": a, "text_b": b}, (count_a + count_b) / 4


def matching_answer(rng):
    cue = int(rng.integers(10, 20))
    answers = [_text(rng, 2, 20, 60) for _ in range(4)]
    label = int(rng.integers(0, 4))
    answers[label][rng.integers(0, 2)] = cue
    return {"context": [cue], "choices": answers}, label


def dataset(task: Task, make, n: int, seed: int, batch_size: int = 16, length: int | None = None):
    """`(ListSource of training batches, list of evaluation batches)` for n training and n // 4 evaluation examples."""
    rng = np.random.default_rng(seed)

    def batches(count):
        examples = [make(rng) for _ in range(count)]
        formatted = [task.format(fields, TOKENS) for fields, _ in examples]
        labels = [label for _, label in examples]
        return [task.pack(formatted[i:i + batch_size], labels[i:i + batch_size], length=length)
                for i in range(0, count, batch_size)]

    return ListSource([tuple(b) for b in batches(n)], seed=seed), batches(n // 4)
