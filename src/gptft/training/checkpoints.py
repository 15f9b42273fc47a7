"""Training checkpoints: written atomically, verified by checksums, pruned to the last K and the best.

A checkpoint is a folder `checkpoints/step-00000120/` holding `state.safetensors` (every parameter the
training step owns: weights, dropout counters, Adam moments, loss scale), `trainer.json` (step, the
best metric so far, early-stopping count) and `manifest.json` (SHA-256 of both, written last). It is
built under a `.partial` name and renamed into place, so a crash mid-write leaves no folder that looks
complete; a folder whose manifest is missing or whose checksums do not match is reported and skipped
in favour of the previous good one. Loading never unpickles.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
from mindspore import Tensor
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from ..errors import ConfigError, GptftError, ModelFileError
from ..model.layers import fit_problems

STATE, TRAINER, MANIFEST = "state.safetensors", "trainer.json", "manifest.json"
_PREFIX = "step-"


class CheckpointWriteError(GptftError, OSError):
    """A checkpoint could not be written (disk full, permissions); the previous ones are untouched."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:08d}"


def save_checkpoint(folder: Path, step: int, params: dict, trainer_state: dict) -> Path:
    """Write checkpoint `step` of `params` (`{name: Parameter}`) and `trainer_state` under `folder`.

    Raises:
        CheckpointWriteError: the write failed (e.g. no space left); the partial folder is removed and
            earlier checkpoints are untouched.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(step)
    partial = folder / (final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        save_file({name: np.ascontiguousarray(p.asnumpy()) for name, p in params.items()}, str(partial / STATE))
        (partial / TRAINER).write_text(json.dumps(dict(trainer_state, step=step), indent=1))
        manifest = {"step": step, "sha256": {name: _sha256(partial / name) for name in (STATE, TRAINER)}}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
        for name in (STATE, TRAINER, MANIFEST):
            with open(partial / name, "rb+") as handle:
                os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(partial, final)
        _fsync_dir(folder)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise CheckpointWriteError(f"could not write the checkpoint of step {step} in {folder} "
                                   f"({error.strerror or error}); the earlier checkpoints are intact: free space "
                                   "and continue with --resume") from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def refuse_existing(folder: Path, run_dir: Path) -> None:
    """A ConfigError when `folder` already holds checkpoints: a new run must not start over another's."""
    existing = list_checkpoints(folder)
    if existing:
        raise ConfigError(f"{run_dir} holds another run's checkpoints; pass --resume to continue it, or choose "
                          f"another --output-dir (newest checkpoint: {existing[-1].name})")


def fingerprint(params: dict) -> str:
    """SHA-256 over every tensor of `params` (`{name: Parameter}`), by name."""
    digest = hashlib.sha256()
    for name in sorted(params):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(params[name].asnumpy()).tobytes())
    return digest.hexdigest()


def verify(checkpoint: Path) -> str | None:
    """None if the checkpoint is complete and matches its manifest, else what is wrong with it."""
    try:
        manifest = json.loads((checkpoint / MANIFEST).read_text())
        for name, expected in manifest["sha256"].items():
            if not (checkpoint / name).is_file():
                return f"{name} is missing"
            if _sha256(checkpoint / name) != expected:
                return f"{name} does not match its checksum (truncated or corrupt)"
    except FileNotFoundError:
        return "manifest.json is missing (the write never finished)"
    except (ValueError, KeyError, TypeError):
        return "manifest.json is unreadable"
    return None


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders by step, oldest first (partial writes excluded)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_good(folder: Path, warn=print) -> Path | None:
    """The newest checkpoint that verifies; each broken newer one is reported through `warn`."""
    for checkpoint in reversed(list_checkpoints(folder)):
        problem = verify(checkpoint)
        if problem is None:
            return checkpoint
        warn(f"skipping checkpoint {checkpoint}: {problem}")
    return None


def load_checkpoint(checkpoint: Path, params: dict, allow_extra: bool = False) -> dict:
    """Copy the saved tensors into `params` (`{name: Parameter}`) and return the trainer state.

    Every name must be present with the same shape: a checkpoint of a different model is refused whole,
    before any parameter changes. `allow_extra` loads a subset (the weights without the optimizer state).
    Tensors are read one at a time and only those `params` names, so loading holds at most one tensor
    beyond the model (loading the best weights after training must not need the optimizer state's size).
    """
    problem = verify(checkpoint)
    if problem:
        raise ModelFileError(f"checkpoint {checkpoint} is unusable: {problem}")
    try:
        with safe_open(str(checkpoint / STATE), framework="numpy") as saved:
            shapes = {name: tuple(saved.get_slice(name).get_shape()) for name in saved.keys()}
            problems = fit_problems(params, shapes, allow_extra)
            if problems:
                raise ModelFileError(f"checkpoint {checkpoint} does not fit this model: " + "; ".join(problems[:8]))
            for name, param in params.items():
                param.set_data(Tensor(saved.get_tensor(name)))
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{checkpoint / STATE}: unreadable ({error})") from None
    return json.loads((checkpoint / TRAINER).read_text())


def prune(folder: Path, keep_last: int, keep: set[int] = frozenset()) -> None:
    """Delete all but the newest `keep_last` checkpoints and those whose step is in `keep` (the best)."""
    checkpoints = list_checkpoints(folder)
    for checkpoint in checkpoints[:-keep_last] if keep_last > 0 else checkpoints:
        if int(checkpoint.name[len(_PREFIX):]) not in keep:
            shutil.rmtree(checkpoint, ignore_errors=True)
