"""Wall time and peak memory of `gptft demo`, as a user runs it: one fresh process tree per run.

    python benchmarks/demo.py                      # gptft demo --seed 0
    python benchmarks/demo.py --seed 1 --from-scratch

The demo pre-trains in a child process and fine-tunes in its own, so peak memory is sampled over the whole
process tree (the sum of every process's resident set, every 0.2 s), with the peak of each command line
beside it. The compile cache starts empty, as on a user's first run, unless `--cache DIR` names one to reuse
(run twice with the same folder to see a warm start).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def sample_tree(process: psutil.Process) -> dict[str, int]:
    """Resident bytes of `process` and its descendants, by command (the gptft subcommand when there is one)."""
    found = {}
    for proc in [process, *process.children(recursive=True)]:
        try:
            command = proc.cmdline()
            rss = proc.memory_info().rss
        except psutil.Error:
            continue  # ended between listing and reading
        name = next((word for word in command if word in ("demo", "pretrain", "train")), " ".join(command[:2]))
        found[name] = found.get(name, 0) + rss
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-scratch", action="store_true")
    parser.add_argument("--cache", help="use (and fill) this compile cache folder (default: a new, empty one)")
    parser.add_argument("--output-dir", help="keep the run here (default: a temporary folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, GPTFT_COMPILE_CACHE=args.cache or str(Path(scratch) / "compile-cache"))
        out = Path(args.output_dir or Path(scratch) / "demo")
        command = [sys.executable, "-m", "gptft", "demo", "--output-dir", str(out), "--seed", str(args.seed),
                   *(["--from-scratch"] if args.from_scratch else [])]
        log = open(Path(scratch) / "output.txt", "w+")  # a file, not a pipe: nothing waits for a reader
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        watched = psutil.Process(child.pid)
        peak_total, peak_by_command = 0, {}
        while child.poll() is None:
            sample = sample_tree(watched)
            peak_total = max(peak_total, sum(sample.values()))
            for name, rss in sample.items():
                peak_by_command[name] = max(peak_by_command.get(name, 0), rss)
            time.sleep(0.2)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read()
        log.close()
    if child.returncode != 0:
        sys.exit(f"gptft demo failed ({child.returncode}):\n{output[-3000:]}")
    accuracy = next(line for line in output.splitlines() if line.startswith("test accuracy"))
    print(f"gptft demo --seed {args.seed}{' --from-scratch' if args.from_scratch else ''}: {accuracy}")
    print(f"wall time {wall:.1f} s; peak memory of the process tree {peak_total / 1e9:.2f} GB "
          f"({', '.join(f'{name} {rss / 1e9:.2f} GB' for name, rss in peak_by_command.items())})")


if __name__ == "__main__":
    main()
