"""A run's output folder, as both recipes hold it: one writer, never over another run's checkpoints.

`claimed` runs before any slow work and for the whole run: it takes the folder's lock (a second process
writing the same folder is refused with the holder's process id; a lock left by a killed process is
released by the kernel, so it never blocks a resume) and checks what the folder holds. A mistake costs
nothing and changes nothing in the folder. `start` then writes the resolved `config.yaml` (once: a
resumed run keeps its own).

`--resume` is what a scheduler's retry loop runs, so it works on every attempt: in a folder with no run
yet, or with this run's `config.yaml` and no checkpoint, the trainer starts from step 0; with checkpoints
it continues from the newest good one. A folder holding a run of a different config is refused, naming
the first key that differs.
"""

import contextlib
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..training.checkpoints import refuse_existing
from ..training.file_lock import holder, try_lock
from .configfile import read_yaml, save, to_dict

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".gptft.lock"
# Keys a resumed run may change: where the folder is.
MAY_DIFFER_ON_RESUME = ("output_dir",)


@contextlib.contextmanager
def claimed(output_dir, config, resume: bool, is_main: bool = True):
    """Hold `output_dir` for this process while the block runs (data-parallel rank 0 holds it for all).

    Raises:
        ConfigError: another live process writes the folder; a new run would start over another's
            checkpoints; or `resume` finds a run of a different config there.
    """
    folder = Path(output_dir)
    created = not folder.exists()
    lock = None
    if is_main:
        folder.mkdir(parents=True, exist_ok=True)
        lock = try_lock(folder / LOCK_FILE)
        if lock is None:
            raise ConfigError(f"{folder} is being written by another gptft process (pid "
                              f"{holder(folder / LOCK_FILE)}); wait for it, stop it, or choose another --output-dir")
    try:
        if resume:
            _refuse_other_config(folder, config)
        else:
            refuse_existing(folder / "checkpoints", folder)
        if lock is not None:
            lock.record_holder()
        yield folder
    finally:
        if lock is not None:
            lock.release()
        if created and is_main and not any(folder.iterdir()):
            folder.rmdir()  # a run refused before writing anything leaves no trace


def start(output_dir, config, resume: bool) -> Path:
    """Create the folder and write `config.yaml` unless a resumed run already has one; returns the folder."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not resume or not (folder / CONFIG_FILE).exists():
        save(config, folder / CONFIG_FILE)
    return folder


def _refuse_other_config(folder: Path, config) -> None:
    path = folder / CONFIG_FILE
    if not path.is_file():
        return
    current = yaml.safe_load(yaml.safe_dump(to_dict(config)))  # the types config.yaml holds
    difference = first_difference(read_yaml(path), current)
    if difference:
        raise ConfigError(f"--resume: {folder} holds a run of a different config ({difference}); resume it with "
                          f"its own config ({path}) or choose another --output-dir")


def first_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first key whose value differs between two config dicts, as `key is A there, B here`."""
    for key in list(saved) + [k for k in current if k not in saved]:
        if not prefix and key in MAY_DIFFER_ON_RESUME:
            continue
        there, here = saved.get(key, "(absent)"), current.get(key, "(absent)")
        if isinstance(there, dict) and isinstance(here, dict):
            found = first_difference(there, here, f"{prefix}{key}.")
            if found:
                return found
        elif there != here:
            return f"{prefix}{key} is {there!r} there, {here!r} here"
    return None
