"""Every head, on the tiny model, learns a small synthetic task: proof the whole path learns, not just runs.
(A head from user code learns through the command line in test_examples.py.)"""

import mindspore as ms
import pytest

from gptft import GPT, GPTConfig, TaskModel
from gptft.tasks import Task
from gptft.training.config import TrainConfig
from helpers import FakeTokenizer, fit_and_evaluate
from synthetic import dataset, keyword, keyword_count, matching_answer, pair_keyword_count, keyword_in_both


def backbone(seed=0):
    return GPT(GPTConfig.preset("tiny", vocab_size=99, block_size=32), seed=seed)


# Examples per task: the two tasks that hinge on one keyword among many tokens need 1,024 to be learned in
# five epochs (with 512 they stay at chance); the others learn from 512.
CASES = [
    ("classification", Task("classification", labels=("no", "yes")), keyword, "accuracy", 0.95, 1024),
    ("regression", Task("classification"), keyword_count, "pearson", 0.95, 512),
    ("entailment", Task("entailment", labels=("no", "yes")), keyword_in_both, "accuracy", 0.9, 1024),
    ("similarity", Task("similarity"), pair_keyword_count, "pearson", 0.9, 512),
    ("multiple_choice", Task("multiple_choice"), matching_answer, "accuracy", 0.9, 512),
]


@pytest.mark.parametrize("name, task, make, metric, threshold, examples", CASES, ids=[c[0] for c in CASES])
def test_head_learns_its_synthetic_task(tmp_path, name, task, make, metric, threshold, examples):
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    train, validation = dataset(task, make, n=examples, seed=1)
    model = TaskModel.for_task(backbone(), task, FakeTokenizer())
    config = TrainConfig(lr=2e-3, batch_size=16, epochs=5, warmup=0.05, log_every=50, seed=0)
    _, test = fit_and_evaluate(model, train, validation, config, tmp_path, test=validation)
    assert test[metric] >= threshold, test
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "checkpoints").is_dir()
