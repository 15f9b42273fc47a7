"""A run's output folder, as both recipes start it: never over another run's checkpoints.

`check` runs before any slow work, so a mistake costs nothing and changes nothing in the folder; `start`
then creates the folder and writes the resolved `config.yaml` (once: a resumed run keeps its own).
"""

from pathlib import Path

from ..training.checkpoints import refuse_existing
from .configfile import save

CONFIG_FILE = "config.yaml"


def check(output_dir, resume: bool) -> None:
    """Refuse to start a new run where another one's checkpoints are; `--resume` continues it instead."""
    if not resume:
        refuse_existing(Path(output_dir) / "checkpoints", Path(output_dir))


def start(output_dir, config, resume: bool) -> Path:
    """Create the folder and write `config.yaml` unless a resumed run already has one; returns the folder."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not resume or not (folder / CONFIG_FILE).exists():
        save(config, folder / CONFIG_FILE)
    return folder
