"""Length-bucketed batches of encoded examples, in an order fixed by (seed, epoch).

`TrainBatches` groups examples of similar length and pads each batch to one of a few fixed lengths,
shuffled with the seed and the epoch number, so the order can be recomputed on resume. `eval_batches`
does the same in a fixed order.
"""

import math
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..tasks.task import Task
from .encoding import Encoded


def default_buckets(max_length: int, smallest: int = 16, growth: float = 1.25, multiple: int = 8) -> tuple[int, ...]:
    """Batch lengths from `smallest` to `max_length`, each about `growth` times the one before.

    Each length compiles the training step once (unless `train.dynamic_length`), so the count trades
    compile time and, on CPU, memory against padding; growth 1.25 gives 15 lengths up to 512 and under 10%
    padded tokens on IMDb-like lengths (docs/performance-cpu.md#batching).
    """
    buckets = [min(smallest, max_length)]
    while buckets[-1] < max_length:
        nxt = int(math.ceil(buckets[-1] * growth / multiple) * multiple)
        buckets.append(min(max(nxt, buckets[-1] + multiple), max_length))
    return tuple(buckets)


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    for bucket in buckets:
        if length <= bucket:
            return bucket
    raise DataError(f"a sequence of {length} tokens exceeds the longest batch length {buckets[-1]}")


class TrainBatches:
    """The training micro-batches of one worker, bucketed by length, in an order fixed by (seed, epoch).

    Each epoch shuffles the examples, sorts them by length within windows of `window` global batches,
    cuts global batches (micro_batch x world_size examples), pads each to its bucket, and shuffles the
    batch order. Worker `rank` takes its rows of every global batch, so all workers run the same shapes
    and the workers together see exactly the batches one process would.
    """

    def __init__(self, encoded: Encoded, task: Task, micro_batch: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, buckets: Sequence[int] = (), pad_id: int = 0, window: int = 50):
        self.encoded, self.task = encoded, task
        self.micro_batch, self.rank, self.world_size = micro_batch, rank, world_size
        self.global_batch = micro_batch * world_size
        self.seed, self.window, self.pad_id = seed, window, pad_id
        self.buckets = tuple(buckets) or default_buckets(task.max_length)
        self.lengths = encoded.lengths
        self.num_batches = len(encoded) // self.global_batch
        self.choices = max(len(e) for e in encoded.sequences)  # S: fixed, so choices never add a shape

    def _global_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.encoded))
        span = self.global_batch * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.global_batch] for i in range(0, len(chunk) - self.global_batch + 1,
                                                                      self.global_batch)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches[:self.num_batches]

    def epoch(self, epoch: int) -> "_LazyBatches":
        return _LazyBatches(self, self._global_batches(epoch))

    def padding_share(self, epoch: int = 0) -> float:
        """Share of the computed token positions that are padding, over one epoch."""
        real = padded = 0
        for batch in self._global_batches(epoch):
            bucket = bucket_for(int(self.lengths[batch].max()), self.buckets)
            real += sum(len(s) for i in batch for s in self.encoded.sequences[i])
            padded += bucket * self.choices * len(batch)
        return 1.0 - real / max(padded, 1)


class _LazyBatches:
    """Packs a worker's micro-batch only when the trainer asks for it."""

    def __init__(self, source: TrainBatches, batches: list[np.ndarray]):
        self.source, self.batches = source, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self)))]
        s = self.source
        batch = self.batches[item]
        # The global batch decides the length, so every worker pads to the same shape.
        length = bucket_for(int(s.lengths[batch].max()), s.buckets)
        mine = batch[s.rank * s.micro_batch:(s.rank + 1) * s.micro_batch]
        return tuple(s.task.pack([s.encoded.sequences[i] for i in mine], s.encoded.labels[mine], pad_id=s.pad_id,
                                 length=length, num_sequences=s.choices))


def eval_batches(encoded: Encoded, task: Task, batch_size: int, buckets: Sequence[int] = (), pad_id: int = 0):
    """(batches, ids in batch order): examples sorted by length so each batch pads little."""
    buckets = tuple(buckets) or default_buckets(task.max_length)
    lengths = encoded.lengths
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        length = bucket_for(int(lengths[index].max()), buckets)
        batches.append(task.pack([encoded.sequences[i] for i in index], encoded.labels[index], pad_id=pad_id,
                                 length=length))
    return batches, [encoded.ids[i] for i in order]
