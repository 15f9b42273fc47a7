"""The run folder: one writer at a time, no new run over checkpoints, no resume of another config."""

import subprocess
import sys
import textwrap

import pytest

from gptft import ConfigError, RunConfig, load_config
from gptft.commands import run_folder
from gptft.training import checkpoints as ckpt


def config(tmp_path, *overrides):
    return load_config(RunConfig, values={"model": {"preset": "tiny"}, "task": {"kind": "classification",
                                          "labels": ["a", "b"]}, "data": {"dataset": str(tmp_path)}, "tokenizer": "gpt2",
                                          "output_dir": str(tmp_path / "run")}, overrides=overrides)


def test_first_difference_names_the_dotted_key():
    assert run_folder.first_difference({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2, "d": 4}}) == \
        "b.d is 3 there, 4 here"
    assert run_folder.first_difference({"a": 1}, {"a": 1, "z": 2}) == "z is '(absent)' there, 2 here"
    assert run_folder.first_difference({"output_dir": "x", "a": 1}, {"output_dir": "y", "a": 1}) is None


def test_resume_of_the_same_config_passes_and_another_is_refused(tmp_path):
    run_folder.start(tmp_path / "run", config(tmp_path), resume=False)
    with run_folder.claimed(tmp_path / "run", config(tmp_path, "output_dir=elsewhere"), resume=True):
        pass  # only the folder's place may differ
    with pytest.raises(ConfigError, match=r"holds a run of a different config \(train.epochs is 3 there, 5 here\)"):
        with run_folder.claimed(tmp_path / "run", config(tmp_path, "train.epochs=5"), resume=True):
            pass


def test_a_new_run_over_checkpoints_is_refused(tmp_path):
    ckpt.save_checkpoint(tmp_path / "run" / "checkpoints", 3, {}, {})
    with pytest.raises(ConfigError, match="holds another run's checkpoints; pass --resume"):
        with run_folder.claimed(tmp_path / "run", config(tmp_path), resume=False):
            pass


def test_a_folder_another_live_process_holds_is_refused_with_its_pid(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from gptft.training.file_lock import try_lock
        from pathlib import Path
        Path({str(folder)!r}).mkdir()
        lock = try_lock(Path({str(folder)!r}) / {run_folder.LOCK_FILE!r})
        lock.record_holder()
        print("locked", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"{folder} is being written by another gptft process \(pid "
                                              rf"{holder.pid}\)"):
            with run_folder.claimed(folder, config(tmp_path), resume=True):
                pass
    finally:
        holder.communicate("")
    with run_folder.claimed(folder, config(tmp_path), resume=True):  # released when its holder exited
        with pytest.raises(ConfigError, match="being written by another gptft process"):
            with run_folder.claimed(folder, config(tmp_path), resume=True):
                pass  # one writer even within one process
