import numpy as np
import pytest

from gptft.data.batches import TrainBatches, bucket_for, default_buckets, eval_batches
from gptft.data.encoding import Encoded
from gptft.errors import DataError
from gptft.tasks import Task

SENTIMENT = Task("classification", labels=("negative", "positive"), max_length=64)


def synthetic_encoded(lengths, rng):
    """One sequence per example whose first token is the example's index, so batches can be traced back."""
    sequences = [[[i] + list(rng.integers(0, 50, n - 1))] for i, n in enumerate(lengths)]
    return Encoded(sequences, np.arange(len(lengths)).astype(np.int32) % 2, list(range(len(lengths))))


def test_default_buckets_grow_slowly_and_end_at_the_maximum():
    buckets = default_buckets(512)
    assert buckets[0] == 16 and buckets[-1] == 512 and len(buckets) == 15
    assert all(b / a <= 1.5 for a, b in zip(buckets, buckets[1:]))
    assert bucket_for(17, buckets) == buckets[1]
    with pytest.raises(DataError, match="exceeds the longest batch length"):
        bucket_for(513, buckets)


def test_train_batches_are_seeded_cover_each_example_once_and_bucket(rng):
    lengths = rng.integers(5, 200, 403)
    encoded = synthetic_encoded(lengths, rng)
    task = Task("classification", labels=("a", "b"), max_length=256)
    source = TrainBatches(encoded, task, micro_batch=8, seed=1)
    assert source.num_batches == 403 // 8
    first, again, other = source.epoch(0), TrainBatches(encoded, task, 8, seed=1).epoch(0), source.epoch(1)
    labels_first = [tuple(b[3]) for b in first]
    assert labels_first == [tuple(b[3]) for b in again]
    order_first = [int(i) for b in first for i in b[0][:, 0, 0]]
    assert order_first != [int(i) for b in other for i in b[0][:, 0, 0]]
    assert len(order_first) == len(set(order_first)) == 8 * source.num_batches  # each example at most once
    for ids, positions, mask, labels in first:
        assert ids.shape[-1] in source.buckets and ids.shape[0] == 8
        assert ids.shape[-1] == bucket_for(int(mask.sum(-1).max()), source.buckets)
        np.testing.assert_array_equal(mask.sum(axis=(1, 2)), lengths[ids[:, 0, 0]])


def test_padding_share_is_what_the_batches_hold(rng):
    lengths = rng.integers(5, 200, 160)
    encoded = synthetic_encoded(lengths, rng)
    task = Task("classification", labels=("a", "b"), max_length=256)
    source = TrainBatches(encoded, task, micro_batch=8, seed=0)
    batches = source.epoch(0)
    real = sum(b[2].sum() for b in batches)
    computed = sum(b[0].size for b in batches)
    assert source.padding_share(0) == pytest.approx(1 - real / computed)
    fixed = TrainBatches(encoded, task, micro_batch=8, seed=0, buckets=(256,))
    assert fixed.padding_share(0) > 2 * source.padding_share(0)


def test_workers_split_each_global_batch(rng):
    encoded = synthetic_encoded(rng.integers(5, 60, 64), rng)
    task = Task("classification", labels=("a", "b"), max_length=64)
    whole = TrainBatches(encoded, task, micro_batch=8, seed=2).epoch(0)
    parts = [TrainBatches(encoded, task, micro_batch=4, seed=2, rank=r, world_size=2).epoch(0) for r in (0, 1)]
    assert len(whole) == len(parts[0]) == len(parts[1])
    for full, a, b in zip(whole, parts[0], parts[1]):
        np.testing.assert_array_equal(np.concatenate([a[0], b[0]]), full[0])


def test_eval_batches_sorted_by_length_with_ids(rng):
    encoded = synthetic_encoded([30, 5, 17, 9], rng)
    task = Task("classification", labels=("a", "b"), max_length=64)
    batches, ids = eval_batches(encoded, task, batch_size=2)
    assert ids == [1, 3, 2, 0]
    assert [b[0].shape[-1] for b in batches] == [16, 32]


def test_multiple_choice_batches_keep_a_fixed_number_of_choices(rng):
    sequences = [[list(rng.integers(0, 50, 6)) for _ in range(k)] for k in (2, 4, 3, 4)]
    encoded = Encoded(sequences, np.zeros(4, np.int32), list(range(4)))
    task = Task("multiple_choice", max_length=32)
    for ids, positions, mask, labels in TrainBatches(encoded, task, micro_batch=2, seed=0).epoch(0):
        assert ids.shape[1] == 4
        assert ((positions >= 0).sum(axis=1) >= 2).all()
