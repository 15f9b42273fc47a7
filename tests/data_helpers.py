"""Helpers of the data tests: small local split files and reading them as the library does."""

import csv

from gptft.data.config import DataConfig
from gptft.data.loading import load_split, read_examples
from gptft.tasks import Task

SENTIMENT = Task("classification", labels=("negative", "positive"), max_length=64)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read(path_or_split, task=SENTIMENT, **config):
    """The examples of one split file or folder, read with a `DataConfig` of `config`."""
    config = DataConfig(**config)
    return read_examples(load_split(config, str(path_or_split)), task, config, "split")
