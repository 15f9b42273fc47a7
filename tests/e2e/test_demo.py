"""The whole `gptft demo` path, with a smaller model and fewer steps (the real one is the README's first command)."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil

from gptft import Tokenizer
from gptft.commands.demo import run_demo
from gptft.training import checkpoints as ckpt
from helpers import logged_steps

SHRINK = ["model.config={block_size: 64, n_embd: 32, n_layer: 1, n_head: 2}", "train.epochs=1",
          "train_tokenizer.vocab_size=600", "train.batch_size=64", "train.max_steps=150", "train.log_every=1"]
FINETUNE = ["train.epochs=1", "train.max_steps=40", "data.buckets=[64]"]

# `gptft demo` in a process of its own, exiting with the code the command line would.
DEMO_SCRIPT = """
import json, sys
from gptft.commands.demo import run_demo
from gptft.commands.stage import StageFailed
try:
    run_demo(sys.argv[1], pretrain_overrides=json.loads(sys.argv[2]), finetune_overrides=json.loads(sys.argv[3]))
except StageFailed as failed:
    sys.exit(failed.exit_code)
"""


def test_demo_stopped_while_pre_training_resumes_and_ends_end_to_end(tmp_path, capfd):
    """SIGTERM to the demo's process group (as a scheduler or a terminal sends it) reaches its pre-training
    process once: that process saves and stops, the demo exits 143, and `resume` finishes both stages."""
    out = tmp_path / "pre"
    demo = subprocess.Popen([sys.executable, "-c", DEMO_SCRIPT, str(out), json.dumps(SHRINK), json.dumps(FINETUNE)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, GLOG_v="3"), start_new_session=True)
    deadline = time.time() + 300
    while logged_steps(out / "pretrain") < 2 and demo.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    children = psutil.Process(demo.pid).children()
    assert [" ".join(c.cmdline()[1:4]) for c in children] == ["-m gptft pretrain"]  # pre-training has its own process
    os.killpg(demo.pid, signal.SIGTERM)  # the child has its own session: only the demo can pass this on
    output, _ = demo.communicate(timeout=300)
    assert demo.returncode == 143, output
    stopped_at = int(ckpt.list_checkpoints(out / "pretrain" / "checkpoints")[-1].name.split("-")[1])
    assert f"stopped by SIGTERM after step {stopped_at}" in output and 2 <= stopped_at < 150
    assert not psutil.pid_exists(children[0].pid)  # the demo waited for its child
    assert not (out / "checkpoints").exists()  # fine-tuning never started

    capfd.readouterr()
    result = run_demo(out, pretrain_overrides=SHRINK, finetune_overrides=FINETUNE, resume=True)
    assert f"(step {stopped_at})" in capfd.readouterr().out  # the pre-training process resumed its checkpoint
    records = [json.loads(line) for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "lr" in r] == list(range(1, 151))  # every step once, none redone
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and records[-1]["accuracy"] == result.test["accuracy"]
    assert (out / "learning_curves.png").is_file()
    assert (out / "pretrain" / "model" / "model.safetensors").is_file()


def test_demo_from_scratch_fine_tunes_the_same_model_from_random_weights(tmp_path):
    scratch = run_demo(tmp_path / "scratch", from_scratch=True, pretrain_overrides=SHRINK, finetune_overrides=FINETUNE)
    assert not (tmp_path / "scratch" / "pretrain").exists()
    records = [json.loads(line) for line in (tmp_path / "scratch" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1] == {"step": 40, "split": "test", **scratch.test}
    shape = json.loads((tmp_path / "scratch" / "model" / "config.json").read_text())
    assert (shape["n_embd"], shape["n_layer"], shape["n_head"]) == (32, 1, 2)  # the demo's model, from random weights
    assert Tokenizer.from_pretrained(tmp_path / "scratch" / "tokenizer").vocab_size == shape["vocab_size"]
