"""Stopping a training run cleanly on SIGTERM and SIGINT.

A scheduler, `timeout` or a container stop sends SIGTERM; Ctrl-C sends SIGINT. While `StopRequests` is
active the first of either only records the request: the loop finishes the optimizer step in flight (all
of its micro-batches, so the state stays a function of the step number), writes a checkpoint and raises
`TrainingInterrupted`. A second signal means "now": it raises `KeyboardInterrupt` wherever the process is,
which a checkpoint being written survives (the write is atomic: the partial folder is removed and the
earlier checkpoints stay).

Data-parallel workers must stop at the same step, or the ones still running would wait forever for the
others' gradients; `any_rank_vote` is the vote every worker casts after each step (an all-reduce of the
requests), so a signal that reaches one worker stops them all at the same step.
"""

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; `exit_code` is the conventional 128 + signal.

    Not a `GptftError`: nothing was wrong with the input, and the command line exits with 143 (SIGTERM) or
    130 (SIGINT) rather than 2.
    """

    def __init__(self, signum: int, step: int, checkpoint):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint "
                         f"{checkpoint}: continue with --resume")


class StopRequests:
    """`with StopRequests() as stop:` records SIGTERM/SIGINT in `stop.signum` instead of dying.

    Handlers can only be installed from the main thread; elsewhere (a script training in a thread) the
    block changes nothing and signals keep their usual effect.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt  # the second request: stop at once
        self.signum = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def reinstall(self) -> None:
        """Put the handlers back after a step. MindSpore's runtime installs its own SIGINT handler every time
        it runs a graph, and that handler sends the process SIGTERM: a Ctrl-C that lands while a graph runs
        is heard here as SIGTERM (the run still stops cleanly, with exit code 143); one that lands between
        graphs is heard as SIGINT (130)."""
        if self._previous:
            for sig in SIGNALS:
                signal.signal(sig, self._handle)

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False


def any_rank_vote():
    """The data-parallel vote: `vote = any_rank_vote(); vote(signum)` is a signal some worker passed (0 when
    none did), the same on every worker. Every worker must call it the same number of times: it doubles as
    a barrier. MindSpore's CPU AllReduce only sums float32, so each worker sends one count per signal."""
    import mindspore as ms
    import numpy as np
    from mindspore import nn, ops

    class _Sum(nn.Cell):
        def __init__(self):
            super().__init__()
            self.reduce = ops.AllReduce(ops.ReduceOp.SUM)

        def construct(self, x):
            return self.reduce(x)

    cell = _Sum()

    def vote(signum: int) -> int:
        counts = np.array([float(signum == sig) for sig in SIGNALS], np.float32)
        summed = cell(ms.Tensor(counts)).asnumpy()
        return next((int(sig) for sig, count in zip(SIGNALS, summed) if count > 0), 0)

    return vote
