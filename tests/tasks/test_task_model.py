import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from gptft import GPT, GPTConfig, ModelFileError, TaskModel
from gptft.tasks import Task
from gptft.tasks.heads import SimilarityHead
from helpers import FakeTokenizer, random_ids

SIMILARITY = Task("similarity", labels=("different", "same"))


def similarity_model(seed=0):
    return TaskModel.for_task(GPT(GPTConfig.preset("tiny"), seed=seed), SIMILARITY, FakeTokenizer(), seed=seed)


def test_for_task_adds_the_task_token_rows_and_the_tasks_head():
    backbone = GPT(GPTConfig.preset("tiny"), seed=0)
    old = backbone.wte.weight.asnumpy().copy()
    model = TaskModel.for_task(backbone, SIMILARITY, FakeTokenizer(), seed=0)
    assert model.backbone.wte.weight.shape == (102, 32) and model.task is SIMILARITY
    np.testing.assert_array_equal(model.backbone.wte.weight.asnumpy()[:99], old)
    assert isinstance(model.head, SimilarityHead) and model.head.linear.weight.shape == (2, 32)

    class Small:
        vocab_size = 50

    with pytest.raises(ModelFileError, match="not made for each other"):
        TaskModel.for_task(GPT(GPTConfig.preset("tiny")), SIMILARITY, Small())


def test_saved_folder_loads_with_the_same_logits_and_task(tmp_path, rng):
    model = similarity_model(3)
    ids, positions = random_ids(rng, (3, 2, 9), vocab=102), Tensor(np.full((3, 2), 8, np.int32))
    expected = model(ids, positions).asnumpy()
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors", "head.safetensors", "task.json"}
    loaded = TaskModel.from_pretrained(tmp_path)
    assert loaded.task == SIMILARITY
    np.testing.assert_array_equal(loaded(ids, positions).asnumpy(), expected)


def test_a_folder_whose_head_does_not_fit_its_task_is_refused(tmp_path):
    similarity_model().save_pretrained(tmp_path)
    (tmp_path / "task.json").write_text(json.dumps({"kind": "similarity", "labels": ["a", "b", "c"]}))
    with pytest.raises(ModelFileError, match="head.safetensors does not fit a similarity head"):
        TaskModel.from_pretrained(tmp_path)
    (tmp_path / "task.json").unlink()
    with pytest.raises(ModelFileError, match="has no task.json"):
        TaskModel.from_pretrained(tmp_path)


def test_one_forward_graph_for_every_length(rng):
    ms.set_context(mode=ms.GRAPH_MODE)
    model = similarity_model()
    model.compile_for_any_length()
    model.compile_for_any_length()  # a second call changes nothing
    for length in (5, 9, 13):
        model(random_ids(rng, (2, 2, length), vocab=102), Tensor(np.full((2, 2), length - 1, np.int32)))
    assert len(model.compile_cache) == 1
