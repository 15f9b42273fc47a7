"""Real training processes stopped by signals: SIGTERM and SIGINT save and exit 143 / 130, SIGKILL (at a
step or in the middle of a checkpoint write) saves nothing more; every one resumes to exactly the state of
an uninterrupted run. `--resume` works on a scheduler's first attempt; one writer per run folder, and the
lock a killed process leaves behind blocks nothing."""

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


def gptft(*args, script=()):
    """`gptft *args`, or `python script... *args` for a script in scripts/ that wraps gptft's main."""
    command = [sys.executable, *([str(SCRIPTS / script[0]), *script[1:]] if script else ["-m", "gptft"]), *args]
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


def reference_run(folder: Path, *settings: str) -> tuple[Path, Path, dict]:
    """An uninterrupted run with `settings`, started the way a scheduler starts one: `--resume` into a
    folder with no run. Returns its config, its output folder and its final state."""
    config = write_keyword_run(folder)
    run = folder / "whole"
    process = gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES, *settings)
    output = finish(process)
    assert process.returncode == 0 and "outputs in" in output, output
    assert "starting the run from step 0" in output
    return config, run, final_state(run)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("interrupt"))


@pytest.fixture(scope="module")
def uninterrupted_lora(tmp_path_factory):
    """A LoRA run: its checkpoints hold only the adapters, new embedding rows, head and their moments."""
    return reference_run(tmp_path_factory.mktemp("interrupt-lora"), *LORA)


LORA = ["--train.lora.rank=4", "--train.lora.dropout=0.1"]


def stop_with(sig, process, run: Path) -> tuple[int, str]:
    """Sends `sig` to a training process, checks that it saved one checkpoint at the step in flight and
    exited with the signal's code; returns that step and the process's output."""
    before = ckpt.list_checkpoints(run / "checkpoints")
    process.send_signal(sig)
    output = finish(process)
    # MindSpore's runtime installs its own SIGINT handler whenever it runs a graph, and that handler sends
    # the process SIGTERM: a Ctrl-C that lands inside a graph stops the run as SIGTERM (143) does.
    heard = signal.SIGTERM if sig == signal.SIGINT and process.returncode == 143 else sig
    assert process.returncode == 128 + heard, output
    saved = [c for c in ckpt.list_checkpoints(run / "checkpoints") if c not in before]
    assert len(saved) == 1 and ckpt.verify(saved[0]) is None  # the checkpoint the signal asked for
    stopped_at = int(saved[0].name.split("-")[1])
    assert f"stopped by {heard.name} after step {stopped_at}" in output
    assert logged_steps(run) == stopped_at  # the step in flight finished; nothing after it started
    return stopped_at, output


def test_sigterm_then_sigint_at_random_steps_save_and_resume_is_exact(tmp_path, uninterrupted):
    """SIGTERM in the first epoch, SIGINT to the resumed run in the second, then a resume to the end."""
    config, _, reference = uninterrupted
    total = reference[1]["step"]
    rng = np.random.default_rng(0)
    at = int(rng.integers(2, total // 2 - 1))  # inside the first epoch: nothing saved yet
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), *OVERRIDES)
    wait_for_step(process, run, at)
    assert ckpt.list_checkpoints(run / "checkpoints") == []
    first_stop, _ = stop_with(signal.SIGTERM, process, run)
    assert at <= first_stop < total // 2

    at = int(rng.integers(total // 2 + 1, total - 1))  # inside the second epoch
    process = gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES)
    wait_for_step(process, run, at)
    second_stop, output = stop_with(signal.SIGINT, process, run)
    assert f"(step {first_stop})" in output and at <= second_stop < total

    resumed = finish(gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES))
    assert f"(step {second_stop})" in resumed, resumed
    assert_same_state(run, reference)


def test_second_sigint_while_saving_corrupts_nothing(tmp_path, uninterrupted):
    config, _, reference = uninterrupted
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), *OVERRIDES,
                    script=("second_sigint_during_checkpoint.py",))
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


# SIGKILL: nothing is saved at the kill, so these runs checkpoint every step to resume from the last one.
EVERY_STEP = ["--train.save_every=1"]


def sigkill_at(step: int, run: Path, process) -> None:
    """SIGKILL `process` once `run` has logged `step`; the lock it leaves behind must block nothing."""
    wait_for_step(process, run, step)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (run / ".gptft.lock").read_text().strip() == str(process.pid)


def resume_to_the_end(config, run, reference, *settings) -> None:
    output = finish(gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES, *EVERY_STEP,
                          *settings))
    assert "resumed from" in output, output
    assert_same_state(run, reference)


def test_sigkill_during_a_checkpoint_write_then_at_a_random_step_and_resume_is_exact(tmp_path, uninterrupted):
    """Killed while writing checkpoint 5 (after the tensors, before the manifest and the rename), resumed,
    killed again at a random later step, resumed to the end."""
    config, _, reference = uninterrupted
    total = reference[1]["step"]
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), *OVERRIDES, *EVERY_STEP,
                    script=("kill_during_checkpoint.py", "5"))
    output = finish(process)
    assert process.returncode == -signal.SIGKILL, output
    leftovers = [p.name for p in (run / "checkpoints").iterdir()]
    assert any(name.endswith(".partial") for name in leftovers)  # killed mid-write, for real
    assert ckpt.latest_good(run / "checkpoints", warn=lambda m: None).name == ckpt.checkpoint_name(4)

    kill_at = int(np.random.default_rng(0).integers(6, total - 1))
    process = gptft("train", str(config), "--output-dir", str(run), "--resume", *OVERRIDES, *EVERY_STEP)
    sigkill_at(kill_at, run, process)
    assert kill_at <= logged_steps(run) < total
    resume_to_the_end(config, run, reference)


def test_a_lora_run_killed_at_a_random_step_resumes_exactly(tmp_path, uninterrupted_lora):
    config, _, reference = uninterrupted_lora
    assert not any(".attn.c_attn.weight" in name for name in reference[0])  # frozen: not checkpointed
    assert any(name.endswith("lora_a") for name in reference[0])
    total = reference[1]["step"]
    kill_at = int(np.random.default_rng(1).integers(2, total - 1))
    run = tmp_path / "cut"
    process = gptft("train", str(config), "--output-dir", str(run), *OVERRIDES, *EVERY_STEP, *LORA)
    sigkill_at(kill_at, run, process)
    assert logged_steps(run) < total
    resume_to_the_end(config, run, reference, *LORA)
