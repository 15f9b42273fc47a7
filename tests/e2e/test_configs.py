"""Every shipped config trains on local files shaped like its hub dataset: the real path but the download."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gptft import GPT, GPTConfig, RunConfig, load_config, train
from gptft.model.tokenizer import train_bpe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
WORDS = "the a film movie man woman plays sits stands walks great bad dull fine story ends".split()


def sentence(i, n=6):
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + "."


# The columns and label values of each hub dataset, a few rows per split.
SHAPES = {
    "imdb": lambda i, split: {"text": sentence(i, 30) + "<br /><br />" + sentence(i + 1), "label": i % 2},
    "sst2": lambda i, split: {"sentence": sentence(i), "label": i % 2, "idx": i},
    "snli": lambda i, split: {"premise": sentence(i), "hypothesis": sentence(i + 2), "label": (i % 4) - 1},
    "stsb": lambda i, split: {"sentence1": sentence(i), "sentence2": sentence(i + 1), "label": float(i % 6), "idx": i},
    "swag": lambda i, split: {"video-id": f"v{i}", "fold-ind": str(i), "startphrase": sentence(i), "sent1": sentence(i),
                              "sent2": "He", "gold-source": "gold", **{f"ending{k}": sentence(i + k, 3) for k in range(4)},
                              "label": i % 4},
    "demo": lambda i, split: {"id": i, "text": sentence(i), "label": i % 2},  # what `gptft demo` writes
}
# Each shipped config and the data it reads.
CONFIG_DATA = {"imdb": "imdb", "sst2": "sst2", "snli": "snli", "stsb": "stsb", "swag": "swag",
               "sst2-gpt2-medium-lora": "sst2", "demo-lora": "demo"}


def test_every_shipped_config_is_tried():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(CONFIG_DATA)


@pytest.fixture(scope="module")
def tiny_released_model(tmp_path_factory):
    """A tiny openai-gpt-layout model folder with a byte-level BPE tokenizer, standing in for the hub's."""
    folder = tmp_path_factory.mktemp("tiny-openai-gpt")
    tokenizer = train_bpe([sentence(i, 12) for i in range(200)], vocab_size=300)
    GPT(GPTConfig.preset("tiny", vocab_size=tokenizer.base_vocab_size, block_size=256)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name", sorted(CONFIG_DATA))
def test_config_trains_on_data_shaped_like_its_dataset(name, tmp_path, tiny_released_model):
    data = tmp_path / "data"
    data.mkdir()
    for split, count in (("train", 48), ("validation", 12), ("test", 12)):
        rows = [SHAPES[CONFIG_DATA[name]](i, split) for i in range(count)]
        pq.write_table(pa.Table.from_pylist(rows), data / f"{split}.parquet")
    path = CONFIGS / f"{name}.yaml"
    config = load_config(RunConfig, path, [f"model.pretrained={tiny_released_model}", f"data.dataset={data}",
                                           f"output_dir={tmp_path / 'run'}", "train.batch_size=8", "train.grad_accum=1",
                                           "train.max_steps=2", "train.eval_every=2",
                                           f"data.cache_dir={tmp_path / 'cache'}"])
    reference = load_config(RunConfig, path)
    assert config.task == reference.task and config.data.columns == reference.data.columns
    result = train(config)
    assert result.progress.step == 2
    assert set(result.test) == set(config.task.metric_names)
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged == {"step": 2, "split": "test", **result.test}
    assert (tmp_path / "run" / "model" / "task.json").is_file()
    assert (tmp_path / "run" / "model" / "adapter.json").is_file() == ("lora" in name)
    if name == "snli":  # the rows without a gold label (-1) were dropped
        assert (tmp_path / "run" / "predictions-test.jsonl").read_text().count("\n") == 9
