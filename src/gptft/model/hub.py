"""Turning a model name or a folder path into a local folder.

A local folder always wins. Anything else is a Hugging Face hub repository, fetched (or found in the local
cache) with `huggingface_hub`, which honours `HF_ENDPOINT`: mirrors are how many MindSpore users reach the
hub. `HF_HUB_OFFLINE=1` makes it use the cache only.
"""

import os
from pathlib import Path

from ..errors import GptftError

# Short names people type, mapped to the repositories that hold them today.
HUB_ALIASES = {
    "openai-gpt": "openai-community/openai-gpt",
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
}

MODEL_FILES = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
TOKENIZER_FILES = ["tokenizer.json", "vocab.json", "merges.txt", "encoder.json", "vocab.bpe"]


class HubError(GptftError):
    """A name that is neither a local folder nor a repository the hub (or its cache) could provide."""


def resolve_folder(name_or_path, patterns: list[str]) -> Path:
    """Return a local folder for `name_or_path`, downloading the files matching `patterns` if needed."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists():
        raise HubError(f"{name} is a file; give the folder that holds config.json and the weights")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise HubError(f"no such folder: {name}")
    repo_id = HUB_ALIASES.get(name, name)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id, allow_patterns=patterns))
    except Exception as error:  # the hub library raises many types; all mean "not available"
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = ("HF_HUB_OFFLINE is set, so only the local cache was searched"
                if offline else f"set HF_ENDPOINT to a reachable mirror (now {endpoint})")
        raise HubError(f"{name!r} is not a local folder and could not be fetched as hub repository "
                       f"{repo_id!r} ({type(error).__name__}): {hint}, or pass a local folder") from error
