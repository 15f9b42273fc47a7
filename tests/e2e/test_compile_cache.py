"""The compile cache with real training processes: a repeated run loads its graphs, and a run whose graphs
differ (another width, other batch lengths, a run that died before finishing) never loads a stale one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from gptft import GPT, GPTConfig
from helpers import write_keyword_run


def train(config, out, cache, *overrides, wait=True):
    env = dict(os.environ, GLOG_v="3", GPTFT_COMPILE_CACHE=str(cache))
    command = [sys.executable, "-m", "gptft", "train", str(config), "--output-dir", str(out), "--train.epochs=1",
               *overrides]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if not wait:
        return process
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return load_file(str(out / "model" / "model.safetensors")), json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def graphs(cache: Path) -> dict:
    """{cache folder: {graph file: modification time}} of the complete folders."""
    return {folder.name: {f.name: f.stat().st_mtime_ns for f in folder.rglob("*.mindir")}
            for folder in cache.iterdir() if folder.is_dir() and (folder / "complete").exists()}


def assert_same(a, b):
    weights_a, test_a = a
    weights_b, test_b = b
    assert test_a == test_b
    for name in weights_a:
        np.testing.assert_array_equal(weights_a[name], weights_b[name], err_msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache-runs")
    config = write_keyword_run(folder)
    wide = folder / "wide"  # the same run on a model twice as wide: same code, same shapes of the batches
    GPT(GPTConfig.preset("tiny", n_embd=64, vocab_size=GPT.from_pretrained(folder / "model").config.vocab_size,
                         block_size=32)).save_pretrained(wide)
    (wide / "tokenizer.json").write_bytes((folder / "model" / "tokenizer.json").read_bytes())
    return folder, config, wide


@pytest.mark.parametrize("lengths", [["--train.dynamic_length=true"], []], ids=["one graph", "graph per length"])
def test_a_repeated_run_loads_its_graphs_and_ends_identically(runs, tmp_path, lengths):
    folder, config, _ = runs
    cache = tmp_path / "cache"
    first = train(config, tmp_path / "a", cache, *lengths)
    cached = graphs(cache)
    assert len(cached) == 1 and len(next(iter(cached.values()))) >= 4  # gradients, norm, update, evaluation
    second = train(config, tmp_path / "b", cache, *lengths)
    assert graphs(cache) == cached  # loaded, not compiled again: no graph file was written
    assert_same(first, second)
    uncached = train(config, tmp_path / "c", "off", *lengths)
    assert_same(first, uncached)


def test_another_width_or_other_batch_lengths_never_load_a_stale_graph(runs, tmp_path):
    folder, config, wide = runs
    cache = tmp_path / "cache"
    train(config, tmp_path / "a", cache, "--train.dynamic_length=true")
    wide_cached = train(config, tmp_path / "b", cache, "--train.dynamic_length=true", f"--model.pretrained={wide}")
    assert len(graphs(cache)) == 2
    assert_same(wide_cached, train(config, tmp_path / "c", "off", "--train.dynamic_length=true",
                                   f"--model.pretrained={wide}"))
    train(config, tmp_path / "d", cache)  # one graph per length, buckets [24]
    other_lengths = train(config, tmp_path / "e", cache, "--data.buckets=[16, 24]")
    assert len(graphs(cache)) == 4
    assert_same(other_lengths, train(config, tmp_path / "f", "off", "--data.buckets=[16, 24]"))


def test_graphs_of_a_run_that_died_are_never_used(runs, tmp_path):
    folder, config, _ = runs
    cache = tmp_path / "cache"
    process = train(config, tmp_path / "a", cache, "--train.dynamic_length=true", "--train.log_every=1", wait=False)
    metrics = tmp_path / "a" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = [f for f in cache.iterdir() if f.is_dir()]
    assert len(partial) == 1 and not (partial[0] / "complete").exists() and list(partial[0].rglob("*.mindir"))
    before = {f.name: f.stat().st_mtime_ns for f in partial[0].rglob("*.mindir")}
    finished = train(config, tmp_path / "b", cache, "--train.dynamic_length=true")
    after = graphs(cache)[partial[0].name]
    assert all(after[name] != before[name] for name in before)  # thrown away and compiled again
    assert_same(finished, train(config, tmp_path / "c", "off", "--train.dynamic_length=true"))
