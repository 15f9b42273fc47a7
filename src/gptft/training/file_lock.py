"""Advisory file locks that die with their process.

`fcntl.flock` locks belong to the open file, so the kernel releases them when the holder exits however
it exits (SIGKILL included): a lock left behind never blocks anyone. The holder writes its process id
into the file so that whoever is refused can say who holds it.
"""

import fcntl
import os
from pathlib import Path


def try_lock(path) -> object | None:
    """An open handle holding an exclusive lock on `path` (close it to release), or None if another holds it.

    The file is not changed until `record_holder`: a process that takes the lock and then refuses to run
    leaves it as it was.
    """
    path = Path(path)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def record_holder(handle) -> None:
    """Write this process's id into a lock file `try_lock` returned."""
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()


def holder(path) -> str:
    """The process id written by the lock's holder ('unknown' if it cannot be read)."""
    try:
        return Path(path).read_text().strip() or "unknown"
    except OSError:
        return "unknown"
