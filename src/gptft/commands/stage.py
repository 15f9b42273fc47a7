"""Running one gptft command as a child process, so that what it holds ends with it.

MindSpore never gives back the memory of the graphs a process compiled (docs/performance-cpu.md#graph-memory):
a recipe with two training stages (the demo pre-trains, then fine-tunes) runs the first as its own process.
"""

import signal
import subprocess
import sys
import threading

from ..training.interrupt import SIGNALS


class StageFailed(Exception):
    """A command run by `run_stage` failed; its process already said why. `exit_code` is the process's (2 for
    bad input, 130 or 143 when a signal stopped it after saving a checkpoint), which `gptft` exits with too."""

    def __init__(self, command: str, exit_code: int):
        self.exit_code = exit_code
        super().__init__(f"`gptft {command}` exited with code {exit_code}")


def run_stage(arguments: list[str]) -> None:
    """`gptft *arguments` as a child process; raises `StageFailed` unless it succeeds.

    The child runs in its own session and this process passes each SIGTERM or SIGINT it receives on to it,
    once: a Ctrl-C or a signal to the whole process group reaches the child exactly once, so it stops as a
    lone `gptft pretrain` would (finishing its step and saving a checkpoint; a second signal stops it at
    once). On Linux the child is also sent SIGTERM if this process dies without passing anything on.
    """
    child = subprocess.Popen([sys.executable, "-m", "gptft", *arguments], start_new_session=True,
                             preexec_fn=_terminate_when_parent_dies if sys.platform == "linux" else None)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda signum, frame: child.send_signal(signum)) for sig in SIGNALS}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code != 0:
        raise StageFailed(arguments[0], code if code > 0 else 128 - code)  # -N: killed by signal N


def _terminate_when_parent_dies() -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
