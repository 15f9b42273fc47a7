"""Data parallel with MindSpore's own launcher: two msrun CPU workers equal one process on the same batches."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from safetensors.numpy import load_file

from gptft.training import checkpoints as ckpt
from helpers import assert_same_state, final_state, logged_steps, write_keyword_run

MSRUN = shutil.which("msrun") or str(Path(sys.executable).parent / "msrun")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launch:
    """`msrun` with two CPU workers running `gptft train config --output-dir out`, paused while they run.

    msrun --join=True waits for its workers in a loop that never sleeps: a whole core of this 2-core machine,
    taken from the workers and the suite's other tests. Once it has started its scheduler and both workers,
    this stops msrun (SIGSTOP: its children run on) and wakes it when both workers have ended; it then reaps
    them, reports their exit codes and exits as it would have.
    """

    def __init__(self, config, out: Path, logs: Path, *args):
        gptft_main = shutil.which("gptft") or str(Path(sys.executable).parent / "gptft")
        self.msrun = subprocess.Popen([MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}",
                                       "--join=True", f"--log_dir={logs}", str(gptft_main), "train", str(config),
                                       "--output-dir", str(out), *OVERRIDES, *args],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
        self.workers = self._spawned_workers()
        if self.workers:
            self.msrun.send_signal(signal.SIGSTOP)

    def _spawned_workers(self) -> list[psutil.Process]:
        deadline = time.time() + 120
        while time.time() < deadline and self.msrun.poll() is None:
            try:
                runs = [c for c in psutil.Process(self.msrun.pid).children() if "gptft" in " ".join(c.cmdline())]
                workers = [c for c in runs if c.environ().get("MS_ROLE") == "MS_WORKER"]
            except psutil.Error:  # a child (or msrun) ended between the two reads
                runs, workers = [], []
            if len(workers) == 2 and len(runs) == 3:  # and the scheduler
                return workers
            time.sleep(0.05)
        return []  # msrun ended (or never spawned both): it runs on unpaused

    def poll(self):
        """None while a worker or (once woken) msrun runs, else msrun's exit code."""
        if any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in self.workers):
            return None
        self.msrun.send_signal(signal.SIGCONT)
        return self.msrun.poll()

    def communicate(self, timeout: float) -> str:
        """Waits for the workers, then for msrun; returns msrun's output (`returncode` is its exit code)."""
        try:
            deadline = time.time() + timeout
            while self.poll() is None and time.time() < deadline:
                time.sleep(0.2)
        finally:
            self.msrun.send_signal(signal.SIGCONT)
        output, _ = self.msrun.communicate(timeout=max(1.0, deadline - time.time()))
        return output

    def worker(self, rank: int) -> psutil.Process:
        """The worker process of `rank` (msrun gives each its rank as MS_NODE_ID)."""
        for worker in self.workers:
            if worker.environ().get("MS_NODE_ID") == str(rank):
                return worker
        raise AssertionError(f"msrun started no worker of rank {rank}")

    @property
    def returncode(self):
        return self.msrun.returncode


def what_msrun_said(output: str, logs: Path) -> str:
    """A failed launch's story: msrun's lines about exit codes, then the end of every log in `logs`."""
    own = [line for line in output.splitlines() if "exit" in line.lower()]  # "Worker process N exit with ... Error code: C"
    ends = [f"--- {log.name}\n{log.read_text()[-2000:]}" for log in sorted(logs.glob("*.log"))]
    return "\n".join(own + ends)


def fingerprints(logs: Path) -> list[str]:
    found = [re.search(rf"rank {rank}: final training state sha256 (\w+)", (logs / f"worker_{rank}.log").read_text())
             for rank in (0, 1)]
    assert all(found), [(logs / f"worker_{rank}.log").read_text()[-3000:] for rank in (0, 1)]
    return [match.group(1) for match in found]


OVERRIDES = ["--train.classifier_dropout=0.0", "--train.epochs=1"]
ENV = dict(os.environ, GLOG_v="3")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """(config, run folder, msrun log folder) of an uninterrupted two-worker run."""
    tmp_path = tmp_path_factory.mktemp("distributed")
    # No dropout (masks depend on the batch shape); every text has the same length, so each worker's
    # LM-loss mean over its tokens averages to the single process's mean over all of them.
    config = write_keyword_run(tmp_path, extra=["model: {pretrained: %s, config: {embd_pdrop: 0.0, attn_pdrop: 0.0, "
                                                "resid_pdrop: 0.0}}" % (tmp_path / "model")])
    text = config.read_text().splitlines()
    config.write_text("\n".join(line for line in text[1:]) + "\n")  # the last model line wins: drop the first
    logs = tmp_path / "msrun-logs"
    launched = Launch(config, tmp_path / "two", logs)
    output = launched.communicate(timeout=900)
    assert launched.returncode == 0, what_msrun_said(output, logs)
    return config, tmp_path / "two", logs


def test_two_msrun_workers_match_one_process(tmp_path, two_workers):
    config, two_dir, logs = two_workers
    single = subprocess.run([sys.executable, "-m", "gptft", "train", str(config), "--output-dir", str(tmp_path / "one"),
                             *OVERRIDES], capture_output=True, text=True, env=ENV, timeout=600)
    assert single.returncode == 0, single.stdout + single.stderr
    worker_logs = {rank: (logs / f"worker_{rank}.log").read_text() for rank in (0, 1)}
    first, second = fingerprints(logs)
    assert first == second  # both ranks end with identical weights
    # Only rank 0 writes: one record per step in metrics.jsonl, the same steps as the single process.
    steps = [json.loads(line).get("step") for line in (two_dir / "metrics.jsonl").read_text().splitlines()
             if "split" not in line]
    assert steps == sorted(set(steps)) and len(steps) == len(
        [line for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines() if "split" not in line])
    assert "outputs in" in worker_logs[0] and "outputs in" not in worker_logs[1]
    one = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    two = load_file(str(two_dir / "model" / "model.safetensors"))
    start = load_file(str(config.parent / "model" / "model.safetensors"))
    ratios = []
    for name in one:
        travelled = np.abs(one[name] - start[name]).max() if name != "tokens_embed.weight" else np.abs(one[name]).max()
        ratios.append(np.abs(two[name] - one[name]).max() / travelled)
        assert travelled > 1e-4, name  # every tensor trained
    # Float rounding differs (the mean of two half-batch means against one mean over the batch); the
    # two trajectories agree to within 0.1% of the distance the weights travelled (measured: 1.2e-5).
    assert max(ratios) < 1e-3


def test_sigterm_to_one_worker_stops_both_at_one_step_and_resume_is_exact(tmp_path, two_workers):
    config, reference_dir, reference_logs = two_workers
    out = tmp_path / "cut"
    cut = Launch(config, out, tmp_path / "logs-cut")
    deadline = time.time() + 600
    while logged_steps(out) < 3 and cut.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert cut.poll() is None, "the run ended before the signal could be sent"
    cut.worker(1).send_signal(signal.SIGTERM)  # only rank 1 hears it; rank 0 learns from the vote
    cut.communicate(timeout=600)
    logs = {rank: (tmp_path / "logs-cut" / f"worker_{rank}.log").read_text() for rank in (0, 1)}
    saved = ckpt.list_checkpoints(out / "checkpoints")
    assert len(saved) == 1, logs
    step = int(saved[0].name.split("-")[1])
    assert f"stopped by SIGTERM after step {step}" in logs[0] and f"stopped by SIGTERM after step {step}" in logs[1]
    assert logged_steps(out) == step
    resumed = Launch(config, out, tmp_path / "logs-resumed", "--resume")
    output = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, what_msrun_said(output, tmp_path / "logs-resumed")
    assert fingerprints(tmp_path / "logs-resumed") == fingerprints(reference_logs)
    assert_same_state(out, final_state(reference_dir))
