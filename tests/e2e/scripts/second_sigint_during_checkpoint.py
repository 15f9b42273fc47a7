"""Run `gptft` and, while it writes the checkpoint that a first SIGINT asked for, send it a second SIGINT.

The second signal lands after the tensors are written and before the manifest and the rename: the
moment an impatient user presses Ctrl-C again. Used by tests/e2e/test_interrupt.py:

    python second_sigint_during_checkpoint.py train config.yaml --output-dir DIR
"""

import os
import signal
import sys

from gptft.commands.cli import main
from gptft.training import checkpoints

original = checkpoints.save_file


def save_then_signal(tensors, path, *args, **kwargs):
    original(tensors, path, *args, **kwargs)
    handler = signal.getsignal(signal.SIGINT)
    requests = getattr(handler, "__self__", None)  # the trainer's StopRequests while it trains
    if requests is not None and requests.signum is not None:
        print("second SIGINT during the checkpoint write", flush=True)
        os.kill(os.getpid(), signal.SIGINT)


checkpoints.save_file = save_then_signal
sys.exit(main(sys.argv[1:]))
