"""Choosing the device, execution mode, precision and data-parallel group through MindSpore's context.

One `device` setting (`cpu`, `gpu`, `ascend`) selects the target; `mode` selects GRAPH_MODE (compiled,
the default, and much faster than PyNative on CPU: docs/performance-cpu.md) or PyNative (for debugging).
Data parallel starts when the process was launched by `msrun`, which sets `MS_WORKER_NUM` for every
worker.
"""

import os
from dataclasses import dataclass

from ..errors import ConfigError

DEVICES = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}
MODES = ("graph", "pynative")
PRECISIONS = ("float32", "float16", "bfloat16")

_CPU_PRECISION = (
    "precision {precision!r} is not available on CPU: MindSpore has no bfloat16 CPU kernels for MatMul, "
    "Softmax or LayerNorm, and float16 runs slower than float32 on CPU; use precision: float32 on CPU "
    "(mixed precision is for GPU and Ascend)"
)


@dataclass(frozen=True)
class Placement:
    """Where this process runs: the MindSpore target, the mode, and its place in the data-parallel group."""

    target: str
    mode: str
    precision: str
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes checkpoints and logs."""
        return self.rank == 0


def check_settings(device: str, mode: str = "graph", precision: str = "float32") -> str:
    """Validate the three settings without touching MindSpore; returns the MindSpore target name."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if device == "cpu" and precision != "float32":
        raise ConfigError(_CPU_PRECISION.format(precision=precision))
    return DEVICES[device]


def launched_by_msrun() -> bool:
    return int(os.environ.get("MS_WORKER_NUM", "1")) > 1


def setup(device: str = "cpu", mode: str = "graph", precision: str = "float32") -> Placement:
    """Apply the settings to MindSpore's context and join the data-parallel group if `msrun` started us.

    Raises:
        ConfigError: a setting is unknown, or the device is not present in this MindSpore build.
    """
    target = check_settings(device, mode, precision)
    import mindspore as ms

    if not ms.hal.is_available(target):
        usable = [name for name, t in DEVICES.items() if ms.hal.is_available(t)]
        raise ConfigError(f"device {device!r} is not available: this MindSpore {ms.__version__} can use "
                          f"{', '.join(usable) or 'no device'} here. Install the MindSpore build for {target} "
                          "(and its CUDA or CANN) or set device: cpu")
    ms.set_device(target)
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    if not launched_by_msrun():
        return Placement(target, mode, precision)
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return Placement(target, mode, precision, rank=get_rank(), world_size=get_group_size())


def memory_in_use() -> tuple[float, float] | None:
    """(GB resident in this process, GB in the machine), where Linux's /proc tells; else None."""
    try:
        status = open("/proc/self/status", encoding="ascii").read()
        resident_kb = int(status.split("VmRSS:")[1].split()[0])
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, IndexError):
        return None
    return resident_kb * 1024 / 1e9, total / 1e9


def release_freed_memory() -> None:
    """Hand memory that is free but still mapped back to the system (glibc's `malloc_trim`).

    Compiling a graph leaves large freed blocks inside the allocator; trimming after a compile lowers the
    resident set (docs/performance-cpu.md#graph-memory). Does nothing where glibc is absent.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
