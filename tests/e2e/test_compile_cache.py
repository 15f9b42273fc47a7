"""The compile cache with real training processes: a repeated run loads its graphs (from other folders
too), and a run whose graphs differ (another width, other batch lengths, a run that died before finishing) never loads a stale one."""

import json
import os
import shutil
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
    """The keyword run, the same run's model twice as wide, one cache root, and the first run of each graph
    choice (one graph for all lengths, a graph per length) compiled into that root."""
    folder = tmp_path_factory.mktemp("cache-runs")
    config = write_keyword_run(folder)
    wide = folder / "wide"  # the same run on a model twice as wide: same code, same shapes of the batches
    GPT(GPTConfig.preset("tiny", n_embd=64, vocab_size=GPT.from_pretrained(folder / "model").config.vocab_size,
                         block_size=32)).save_pretrained(wide)
    (wide / "tokenizer.json").write_bytes((folder / "model" / "tokenizer.json").read_bytes())
    cache = folder / "cache"
    first = {}
    for name, lengths in LENGTHS.items():
        before = graphs(cache) if cache.exists() else {}
        first[name] = train(config, folder / f"first-{len(first)}", cache, *lengths)
        added = {key: files for key, files in graphs(cache).items() if key not in before}
        assert len(added) == 1 and len(next(iter(added.values()))) >= 4  # gradients, norm, update, evaluation
    return folder, config, wide, cache, first


LENGTHS = {"one graph": ["--train.dynamic_length=true"], "graph per length": []}


@pytest.mark.parametrize("name", LENGTHS)
def test_a_repeated_run_loads_its_graphs_and_ends_identically(runs, tmp_path, name):
    folder, config, _, cache, first = runs
    moved = tmp_path / "moved"  # the same run from a copy of its model and data: paths decide no graph
    shutil.copytree(folder / "model", moved / "model")
    for split in ("train", "validation", "test"):
        shutil.copy(folder / f"{split}.csv", moved)
    (moved / "run.yaml").write_text(config.read_text().replace(str(folder), str(moved)))
    cached = graphs(cache)
    again = train(moved / "run.yaml", tmp_path / "again", cache, *LENGTHS[name])
    assert graphs(cache) == cached  # loaded, not compiled again: no graph file was written or touched
    assert_same(first[name], again)


def test_another_width_or_other_batch_lengths_never_load_a_stale_graph(runs, tmp_path):
    # The cache root already holds the graphs of the narrow model, one graph and a graph per length [24].
    # A graph of the narrow model run on the wide one would fail the run (the wide run asserts it ends well);
    # a graph of other batch lengths could run and train wrongly, so that run is compared with an uncached one.
    _, config, wide, cache, _ = runs
    for name, overrides in (("wide", ["--train.dynamic_length=true", f"--model.pretrained={wide}"]),
                            ("other lengths", ["--data.buckets=[16, 24]"])):
        before = graphs(cache)
        cached = train(config, tmp_path / name, cache, *overrides)
        assert len(graphs(cache)) == len(before) + 1, name  # a folder of its own, compiled afresh
    assert_same(cached, train(config, tmp_path / "other lengths uncached", "off", *overrides))


def test_graphs_of_a_run_that_died_are_never_used(runs, tmp_path):
    _, config, _, _, first = runs
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
    assert_same(finished, first["one graph"])
