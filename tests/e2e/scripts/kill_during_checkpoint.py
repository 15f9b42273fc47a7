"""Run `gptft` and SIGKILL this very process in the middle of writing checkpoint number N.

The kill lands after the tensors are written and before the manifest and the rename, the moment a
non-atomic writer would leave a broken "latest" checkpoint behind. Used by tests/e2e/test_interrupt.py:

    python kill_during_checkpoint.py N train config.yaml --output-dir DIR
"""

import os
import signal
import sys

from gptft.training import checkpoints as checkpoint
from gptft.commands.cli import main

target = int(sys.argv[1])
written = 0
original = checkpoint.save_file


def save_then_die(tensors, path, *args, **kwargs):
    global written
    original(tensors, path, *args, **kwargs)
    written += 1
    if written == target:
        os.kill(os.getpid(), signal.SIGKILL)


checkpoint.save_file = save_then_die
sys.exit(main(sys.argv[2:]))
