"""A real training process killed with SIGKILL resumes to exactly the weights of an uninterrupted run; the
lock the killed process leaves behind blocks nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gptft.training import checkpoints as ckpt
from helpers import final_state, logged_steps, write_keyword_run

SCRIPTS = Path(__file__).parent / "scripts"


def gptft(*args, wrapper=None, **kwargs):
    command = [sys.executable, *([str(SCRIPTS / wrapper[0]), str(wrapper[1])] if wrapper else ["-m", "gptft"]), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, GLOG_v="3"), **kwargs)


def reference_run(tmp_path_factory, *settings):
    """(config, run folder, final state, the command-line settings) of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("crash")
    config = write_keyword_run(folder)
    run = folder / "whole"
    process = gptft("train", str(config), "--output-dir", str(run), "--train.save_every=1", *settings)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return config, run, final_state(run), settings


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return reference_run(tmp_path_factory)


@pytest.fixture(scope="module")
def uninterrupted_lora(tmp_path_factory):
    """A LoRA run: its checkpoints hold only the adapters, new embedding rows, head and their moments."""
    return reference_run(tmp_path_factory, "--train.lora.rank=4", "--train.lora.dropout=0.1")


def resume_and_compare(config, run, reference, *settings):
    process = gptft("train", str(config), "--output-dir", str(run), "--resume", "--train.save_every=1", *settings)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert "resumed from" in output
    tensors, trainer = final_state(run)
    expected_tensors, expected_trainer = reference
    assert trainer["step"] == expected_trainer["step"]
    assert tensors.keys() == expected_tensors.keys()
    for name in tensors:
        np.testing.assert_array_equal(tensors[name], expected_tensors[name], err_msg=name)
    return output


@pytest.mark.parametrize("trial, reference", [(0, "uninterrupted"), (1, "uninterrupted_lora")])
def test_sigkill_at_a_random_step_then_resume(tmp_path, request, trial, reference):
    config, whole, reference, settings = request.getfixturevalue(reference)
    if settings:
        assert not any(".attn.c_attn.weight" in name for name in reference[0])  # frozen: not checkpointed
        assert any(name.endswith("lora_a") for name in reference[0])
    total = reference[1]["step"]
    kill_at = int(np.random.default_rng(trial).integers(2, total - 1))
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), "--train.save_every=1", *settings)
    deadline = time.time() + 600
    while logged_steps(run) < kill_at and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert logged_steps(run) < total
    assert (run / ".gptft.lock").read_text().strip() == str(process.pid)  # left behind: it must block nothing
    resume_and_compare(config, run, reference, *settings)


def test_sigkill_during_a_checkpoint_write_then_resume(tmp_path, uninterrupted):
    config, whole, reference, _ = uninterrupted
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), "--train.save_every=1",
                    wrapper=("kill_during_checkpoint.py", 5))
    output, _ = process.communicate(timeout=600)
    assert process.returncode == -signal.SIGKILL, output
    leftovers = [p.name for p in (run / "checkpoints").iterdir()]
    assert any(name.endswith(".partial") for name in leftovers)  # killed mid-write, for real
    assert ckpt.latest_good(run / "checkpoints", warn=lambda m: None).name == ckpt.checkpoint_name(4)
    resume_and_compare(config, run, reference)
