import numpy as np
import pytest

from gptft.tasks import formats
from gptft.tasks.formats import TaskTokens

T = TaskTokens(start=100, delimiter=101, extract=102)


def test_classification_sequence():
    assert formats.classification([1, 2, 3], T, max_length=10) == [[100, 1, 2, 3, 102]]


@pytest.mark.parametrize("mode, expected", [
    ("head", [100, 0, 1, 2, 3, 4, 5, 6, 7, 102]),
    ("tail", [100, 12, 13, 14, 15, 16, 17, 18, 19, 102]),
    ("head_tail", [100, 0, 1, 14, 15, 16, 17, 18, 19, 102]),  # budget 8: a quarter (2) from the head
])
def test_single_text_truncation_keeps_special_tokens(mode, expected):
    assert formats.classification(list(range(20)), T, max_length=10, truncation=mode) == [expected]


def test_entailment_sequence():
    assert formats.entailment([1, 2], [3], T, max_length=10) == [[100, 1, 2, 101, 3, 102]]


def test_truncate_pair_cuts_the_longer_part_first():
    assert formats.truncate_pair(list(range(10)), [50, 51, 52], 7) == ([0, 1, 2, 3], [50, 51, 52])
    # Equal lengths after the first cut: the originally longer part gives up the odd token.
    assert formats.truncate_pair(list(range(10)), [50, 51, 52], 5) == ([0, 1], [50, 51, 52])
    assert formats.truncate_pair(list(range(10)), [50, 51, 52], 4) == ([0, 1], [50, 51])
    assert formats.truncate_pair([1], list(range(8)), 4) == ([1], [0, 1, 2])
    assert formats.truncate_pair([1, 2], [3], 5) == ([1, 2], [3])


def test_entailment_truncation_exact():
    premise, hypothesis = list(range(10, 20)), [1, 2, 3]
    assert formats.entailment(premise, hypothesis, T, max_length=10) == [[100, 10, 11, 12, 13, 101, 1, 2, 3, 102]]
    assert formats.entailment(premise, hypothesis, T, max_length=8) == [[100, 10, 11, 101, 1, 2, 3, 102]]


def test_similarity_gives_both_orderings():
    assert formats.similarity([1, 2], [3], T, max_length=10) == [
        [100, 1, 2, 101, 3, 102],
        [100, 3, 101, 1, 2, 102],
    ]
    a, b = formats.similarity(list(range(8)), [50], T, max_length=7)
    assert a == [100, 0, 1, 2, 101, 50, 102] and b == [100, 50, 101, 0, 1, 2, 102]


def test_multiple_choice_one_sequence_per_answer():
    assert formats.multiple_choice([1, 2], [[3], [4, 5], [6]], T, max_length=10) == [
        [100, 1, 2, 101, 3, 102],
        [100, 1, 2, 101, 4, 5, 102],
        [100, 1, 2, 101, 6, 102],
    ]
    seqs = formats.multiple_choice(list(range(10)), [[50], [51, 52, 53]], T, max_length=8)
    assert seqs == [[100, 0, 1, 2, 3, 101, 50, 102], [100, 0, 1, 101, 51, 52, 53, 102]]


def test_no_room_for_special_tokens_is_an_error():
    with pytest.raises(formats.SequenceTooLong, match="max_length 2 leaves no room"):
        formats.entailment([1], [2], T, max_length=2)


def test_unknown_truncation_is_named():
    with pytest.raises(ValueError, match="unknown truncation 'middle'"):
        formats.classification(list(range(20)), T, max_length=10, truncation="middle")


def test_pack_pads_and_marks_positions_and_masks():
    examples = [
        formats.multiple_choice([1], [[2], [3, 4]], T, 10),
        formats.multiple_choice([5, 6], [[7], [8], [9]], T, 10),
    ]
    batch = formats.pack(examples, [1, 2], pad_id=0, length=8)
    assert batch.ids.shape == (2, 3, 8) and batch.ids.dtype == np.int32
    np.testing.assert_array_equal(batch.ids[0, 1], [100, 1, 101, 3, 4, 102, 0, 0])
    np.testing.assert_array_equal(batch.positions, [[4, 5, -1], [5, 5, 5]])
    np.testing.assert_array_equal(batch.choice_mask, [[1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(batch.lm_mask[0, 1], [1, 1, 1, 1, 1, 1, 0, 0])
    assert batch.lm_mask[0, 2].sum() == 0
    np.testing.assert_array_equal(batch.labels, [1, 2])
    assert batch.ids[batch.lm_mask == 0].max() == 0  # pads only where the mask is off


def test_pack_regression_labels_and_too_small_shape():
    batch = formats.pack([[[100, 1, 102]]], [0.25], label_dtype=np.float32)
    assert batch.labels.dtype == np.float32 and batch.ids.shape == (1, 1, 3)
    with pytest.raises(ValueError, match="does not fit"):
        formats.pack([[[100, 1, 2, 102]]], [0], length=3)


def test_formats_module_does_not_import_mindspore():
    import subprocess
    import sys

    code = "import sys; import gptft.tasks.formats; print('mindspore' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
