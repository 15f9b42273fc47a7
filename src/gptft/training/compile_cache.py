"""A compile cache that never loads a stale graph.

MindSpore can save compiled graphs and load them in a later process (`enable_compile_cache`), which turns
a first step of tens of seconds into about one. But it numbers a process's graphs in the order they
compile and checks only the hashes of the network's source files, so a folder reused by a run whose
graphs differ (another model width, batch lengths met in another order) loads the wrong graph.

So gptft gives every run its own folder, named by a hash of everything that decides which graphs the
process compiles and in which order (the caller's `key`: the model and recipe settings, the batch shapes,
the gptft source, the MindSpore version, the device and data-parallel rank). A folder is used only once
it is marked complete by the process that filled it; one left by a process that died is deleted; a folder
another live process holds is left alone (that run compiles without a cache). Only the first run of a
process can use the cache: graphs compiled before it would shift the numbering, so later runs in the same
process compile without it, and caching stops when that run ends.

`GPTFT_COMPILE_CACHE` names the root folder (default `~/.cache/gptft/compile`); `off` turns caching off.
`gptft doctor` reports it and `gptft doctor --clear-compile-cache` empties it.
"""

import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import gptft

from .file_lock import try_lock

ENVIRONMENT = "GPTFT_COMPILE_CACHE"
COMPLETE = "complete"

_state = {"used": False, "folder": None, "lock": None, "depth": 0}


def root() -> Path | None:
    """The cache's root folder, or None when `GPTFT_COMPILE_CACHE=off`."""
    value = os.environ.get(ENVIRONMENT, "")
    if value.lower() in ("off", "0", "false", "no"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "gptft" / "compile"


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 of gptft's own source files: any change to the code is a change of graphs."""
    digest = hashlib.sha256()
    package = Path(gptft.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_of(cls) -> str | None:
    """A hash of a class's source (a user's custom head is not gptft's code), or None if it has none."""
    import inspect

    try:
        return hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}\n{inspect.getsource(cls)}".encode()).hexdigest()
    except (OSError, TypeError):
        return None


def folder_for(key: dict) -> Path | None:
    """The folder of the graphs that `key` describes (None when caching is off)."""
    import mindspore as ms

    base = root()
    if base is None:
        return None
    full = {"key": key, "gptft": gptft.__version__, "source": source_hash(), "mindspore": ms.__version__,
            "device": ms.get_context("device_target"), "mode": ms.get_context("mode")}
    name = hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return base / name


# Settings that change no graph and not the order in which a run compiles them. Paths are among them: what
# the files hold that shapes a graph (the model's size and vocabulary, the batch lengths) is in the key by
# value, so a run on a moved or copied folder still finds its graphs.
NOT_IN_GRAPHS = ("output_dir", "lr", "warmup", "schedule", "log_every", "save_every", "keep_last", "best_metric",
                 "patience", "cache_dir", "pretrained", "tokenizer", "dataset", "files")


def graph_settings(values, drop=NOT_IN_GRAPHS):
    """`values` (a config as a plain dict) without the keys in `drop`, at any depth."""
    if isinstance(values, dict):
        return {k: graph_settings(v, drop) for k, v in values.items() if k not in drop}
    return values


def enable(key: dict, say=print) -> Path | None:
    """Use the cache for this process's graphs, the ones `key` describes; returns the folder, or None when
    the cache is off, held by another process, or this process already ran (and so compiled) something."""
    import mindspore as ms

    if _state["used"]:
        return None
    _state["used"] = True
    folder = folder_for(key)
    if folder is None or not Path(sys.argv[0]).is_file():
        return None  # MindSpore hashes the main script too: a `python -c` process has none
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = try_lock(folder.with_suffix(".lock"))
    if lock is None:
        say(f"compile cache {folder} is in use by another process; compiling without it")
        return None
    if folder.exists() and not (folder / COMPLETE).exists():
        shutil.rmtree(folder)  # filled by a process that did not finish: never trusted
    folder.mkdir(exist_ok=True)
    ms.set_context(enable_compile_cache=True, compile_cache_path=str(folder))
    _state.update(folder=folder, lock=lock)
    return folder


def close(complete: bool) -> None:
    """Stop caching for the rest of the process; mark the folder complete if the run compiled every graph."""
    import mindspore as ms

    folder = _state["folder"]
    if folder is None:
        return
    if complete:
        (folder / COMPLETE).write_text("")
    ms.set_context(enable_compile_cache=False)
    _state["lock"].release()
    _state.update(folder=None, lock=None)


class cached:
    """`with cached(key): ...` uses the cache for the graphs the block compiles (see `enable`), and marks
    the folder complete only if the block ends without an exception. Inside another `cached` block (the
    demo around its two runs) it changes nothing: the outer key describes the inner graphs too."""

    def __init__(self, key: dict | None):
        self.key = key

    def __enter__(self):
        _state["depth"] += 1
        if _state["depth"] > 1 or self.key is None:
            return _state["folder"]
        return enable(self.key)

    def __exit__(self, kind, value, traceback):
        _state["depth"] -= 1
        if _state["depth"] == 0:
            close(complete=kind is None)
        return False


def entries() -> tuple[int, int]:
    """(complete cache folders, bytes under the root)."""
    base = root()
    if base is None or not base.is_dir():
        return 0, 0
    folders = [p for p in base.iterdir() if p.is_dir() and (p / COMPLETE).exists()]
    size = sum(f.stat().st_size for f in base.rglob("*") if f.is_file())
    return len(folders), size


def clear() -> Path | None:
    """Delete every cache folder under the root; returns the root (None when caching is off)."""
    base = root()
    if base is not None and base.is_dir():
        shutil.rmtree(base)
    return base
