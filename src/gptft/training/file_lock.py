"""Advisory file locks that die with their process and leave no file behind when released.

`fcntl.flock` locks belong to the open file, so the kernel releases them when the holder exits however
it exits (SIGKILL included): a lock file a killed process leaves behind never blocks anyone. A holder
that releases normally deletes the file first, so a run folder holds a lock file only while a process
writes it (or after one was killed). The holder writes its process id into the file so that whoever is
refused can say who holds it.
"""

import fcntl
import os
from pathlib import Path


class FileLock:
    """An exclusive lock on `path`, held by this process until `release()`."""

    def __init__(self, path: Path, handle):
        self.path, self.handle = path, handle

    def record_holder(self) -> None:
        """Write this process's id into the lock file."""
        self.handle.truncate(0)
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()

    def release(self) -> None:
        """Delete the lock file, then let go of the lock (in that order: see `try_lock`)."""
        if self.handle.closed:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self.handle.close()


def try_lock(path) -> FileLock | None:
    """A `FileLock` on `path`, or None if another live process holds it.

    The file's content is not changed until `record_holder`. Because a releasing holder deletes the file,
    a lock taken on a file that was deleted (or replaced) meanwhile is worth nothing: it is dropped and
    taken again on the file now at `path`.
    """
    path = Path(path)
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        try:
            same_file = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return FileLock(path, handle)
        handle.close()


def holder(path) -> str:
    """The process id written by the lock's holder ('unknown' if it cannot be read)."""
    try:
        return Path(path).read_text().strip() or "unknown"
    except OSError:
        return "unknown"
