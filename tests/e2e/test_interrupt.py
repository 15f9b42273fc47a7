"""Real training processes stopped with SIGTERM and SIGINT save, exit 143 / 130, and resume exactly;
`--resume` works on a scheduler's first attempt; one writer per run folder (a lock left by a killed
process is tested in test_crash_resume)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gptft.training import checkpoints as ckpt
from helpers import assert_same_state, final_state, logged_steps, write_keyword_run

SCRIPTS = Path(__file__).parent / "scripts"

# Two micro-batches per step, and checkpoints only where the recipe writes them (evaluations at epoch
# ends): a signal mid-epoch finds nothing saved since the last epoch.
OVERRIDES = ["--train.grad_accum=2"]


def gptft(*args, script=None):
    command = [sys.executable, *([str(SCRIPTS / script)] if script else ["-m", "gptft"]), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, GLOG_v="3"))


def finish(process, timeout=600) -> str:
    output, _ = process.communicate(timeout=timeout)
    return output


def wait_for_step(process, run: Path, step: int) -> None:
    deadline = time.time() + 600
    while logged_steps(run) < step and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before the signal could be sent"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run, started the way a scheduler starts one: `--resume` into a folder with no run."""
    folder = tmp_path_factory.mktemp("interrupt")
    config = write_keyword_run(folder)
    run = folder / "whole"
    output = finish(gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES))
    assert "outputs in" in output, output
    assert "starting the run from step 0" in output
    return config, run, final_state(run)


@pytest.mark.parametrize("sig, code, trial", [(signal.SIGTERM, 143, 0), (signal.SIGINT, 130, 1)])
def test_signal_at_a_random_step_saves_and_resume_is_exact(tmp_path, uninterrupted, sig, code, trial):
    config, _, reference = uninterrupted
    total = reference[1]["step"]
    at = int(np.random.default_rng(trial).integers(2, total // 2 - 1))  # inside the first epoch: nothing saved yet
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), *OVERRIDES)
    wait_for_step(process, run, at)
    process.send_signal(sig)
    output = finish(process)
    # MindSpore's runtime installs its own SIGINT handler whenever it runs a graph, and that handler sends
    # the process SIGTERM: a Ctrl-C that lands inside a graph stops the run as SIGTERM (143) does.
    heard = signal.SIGTERM if sig == signal.SIGINT and process.returncode == 143 else sig
    assert process.returncode == 128 + heard == (code if heard == sig else 143), output
    saved = ckpt.list_checkpoints(run / "checkpoints")
    assert len(saved) == 1 and ckpt.verify(saved[0]) is None  # the only checkpoint is the one the signal asked for
    stopped_at = int(saved[0].name.split("-")[1])
    assert at <= stopped_at < total
    assert f"stopped by {heard.name} after step {stopped_at}" in output
    assert logged_steps(run) == stopped_at  # the step in flight finished; nothing after it started
    resumed = finish(gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES))
    assert f"resumed from {saved[0]} (step {stopped_at})" in resumed, resumed
    assert_same_state(run, reference)


def test_second_sigint_while_saving_corrupts_nothing(tmp_path, uninterrupted):
    config, _, reference = uninterrupted
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), *OVERRIDES,
                    script="second_sigint_during_checkpoint.py")
    wait_for_step(process, run, 3)
    process.send_signal(signal.SIGINT)
    output = finish(process)
    assert process.returncode == 130, output
    assert "second SIGINT during the checkpoint write" in output  # it really landed mid-write
    leftovers = list((run / "checkpoints").iterdir()) if (run / "checkpoints").exists() else []
    assert leftovers == []  # the half-written checkpoint was removed, nothing else was there
    resumed = finish(gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES))
    assert "starting the run from step 0" in resumed, resumed
    assert_same_state(run, reference)


def test_resume_refuses_a_folder_of_another_config_and_changes_nothing(tmp_path, uninterrupted):
    config, whole, _ = uninterrupted
    before = {p: p.read_bytes() for p in whole.rglob("*") if p.is_file()}
    result = subprocess.run([sys.executable, "-m", "gptft", "train", str(config), "--output-dir", str(whole),
                             "--resume", *OVERRIDES, "--train.lr=0.002"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"gptft: error: --resume: {whole} holds a run of a different config (train.lr is 0.001 there, 0.002 here); "
        f"resume it with its own config ({whole / 'config.yaml'}) or choose another --output-dir"]
    assert {p: p.read_bytes() for p in whole.rglob("*") if p.is_file()} == before


def test_a_second_writer_is_refused_and_touches_nothing_of_the_live_one(tmp_path, uninterrupted):
    config = uninterrupted[0]
    run = tmp_path / "run"
    first = gptft("train", str(config), "--output-dir", str(run), *OVERRIDES, "--train.epochs=50")
    wait_for_step(first, run, 2)
    second = subprocess.run([sys.executable, "-m", "gptft", "train", str(config), "--output-dir", str(run),
                             "--resume", *OVERRIDES], capture_output=True, text=True)
    assert second.returncode == 2
    assert f"{run} is being written by another gptft process (pid {first.pid})" in second.stderr
    assert first.poll() is None  # still training
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (run / ".gptft.lock").read_text().strip() == str(first.pid)  # the holder named in the refusal


def test_pretraining_stopped_by_sigterm_resumes_exactly(tmp_path):
    import yaml

    from helpers import WORDS

    text = [" ".join(np.random.default_rng(i).choice(WORDS, 10)) + "." for i in range(400)]
    (tmp_path / "text.txt").write_text("\n".join(text) + "\n")
    config = tmp_path / "pretrain.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"preset": "tiny", "config": {"block_size": 32}}, "train_tokenizer": {"vocab_size": 350},
        "data": {"files": [str(tmp_path / "text.txt")], "validation_fraction": 0.1},
        "train": {"lr": 3.0e-3, "batch_size": 8, "epochs": 2, "warmup": 5, "log_every": 1}}))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert "model for `gptft train`" in finish(gptft("pretrain", str(config), "--output-dir", str(whole)))
    reference = final_state(whole)
    process = gptft("pretrain", str(config), "--output-dir", str(cut))
    wait_for_step(process, cut, 4)
    process.send_signal(signal.SIGTERM)
    output = finish(process)
    assert process.returncode == 143, output
    stopped_at = int(ckpt.list_checkpoints(cut / "checkpoints")[-1].name.split("-")[1])
    assert f"stopped by SIGTERM after step {stopped_at}" in output and stopped_at < reference[1]["step"]
    resumed = finish(gptft("pretrain", str(config), "--output-dir", str(cut), "--resume"))
    assert f"(step {stopped_at})" in resumed, resumed
    assert_same_state(cut, reference)
