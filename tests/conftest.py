"""Shared test setup: offline hubs, quiet MindSpore on CPU, every test in its own working folder."""

import os
import tempfile

# Before any import that reads them: no test may reach a hub, and MindSpore logs only errors. Compiled
# graphs are cached for this session only (the cache's own tests point it elsewhere).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GLOG_v", "3")
os.environ.setdefault("GPTFT_COMPILE_CACHE", tempfile.mkdtemp(prefix="gptft-compile-cache-"))

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gptft import GPTConfig  # noqa: E402

ms.set_device("CPU")


# The order in which `--dist loadfile` hands files to the two workers (pyproject turns off xdist's own
# order, most tests first, which left the end-to-end files of few long tests for last): the files of long
# training runs first, so that both workers end on short unit-test files rather than one on a long file.
LONG_FIRST = ("e2e", "training")


def pytest_collection_modifyitems(items):
    """Everything under tests/e2e/ is end to end: `-m "not slow"` runs the rest in a few minutes."""
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.slow)

    def rank(item):
        return next((i for i, folder in enumerate(LONG_FIRST) if folder in item.path.parts), len(LONG_FIRST))

    items.sort(key=rank)  # stable: each file's tests stay together and in their order


def pytest_collection_finish(session):
    """Freeze each test process's imports as the `gptft` command freezes its own: in a process holding
    MindSpore, torch and transformers, the collection MindSpore runs before each compile takes about 0.3 s.
    Done once collection has imported the test modules, with the reference models' modules imported first."""
    import importlib

    from gptft.commands.cli import _freeze_imports

    for reference in ("transformers.models.gpt2.modeling_gpt2", "transformers.models.openai.modeling_openai"):
        importlib.import_module(reference)
    _freeze_imports()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """PyNative mode unless a test compiles on purpose; files MindSpore drops land in tmp_path."""
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture
def tiny_config():
    """2 layers, width 32, 4 heads, vocabulary 99, 32 positions."""
    return GPTConfig.preset("tiny")


@pytest.fixture(scope="session")
def gpt2_folder(tmp_path_factory):
    """GPT-2's real tokenizer files, as transformers expects them (vocab.json + merges.txt)."""
    import shutil

    from helpers import gpt2_files

    folder = tmp_path_factory.mktemp("gpt2")
    shutil.copy(gpt2_files() / "encoder.json", folder / "vocab.json")
    shutil.copy(gpt2_files() / "vocab.bpe", folder / "merges.txt")
    return folder


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One small fine-tuning run through the command line, shared by the tests that read or protect it:
    `(folder, config path)`, the run in `folder / "run"` (12 steps, evaluated at 6 and 12, checkpoints
    every 2)."""
    from gptft.commands.cli import main
    from helpers import write_keyword_run

    folder = tmp_path_factory.mktemp("finished")
    config = write_keyword_run(folder)
    assert main(["train", str(config), "--output-dir", str(folder / "run"), "--train.epochs=1",
                 "--train.eval_every=6", "--train.save_every=2"]) == 0
    return folder, config
