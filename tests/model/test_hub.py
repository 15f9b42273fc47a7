"""Hub names resolve through huggingface_hub (offline here: from a prepared cache), local folders first."""

import numpy as np
import pytest

from gptft import GPT, GPTConfig
from gptft.model.hub import HubError


def test_hub_name_resolves_from_the_local_cache(tmp_path, monkeypatch, rng):
    """A hub name goes through huggingface_hub: here (offline) it is found in a prepared cache."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    snapshot = tmp_path / "cache" / "models--openai-community--gpt2" / "snapshots" / ("a" * 40)
    model = GPT(GPTConfig.preset("tiny", layout="pre_ln"), seed=9)
    model.save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    loaded = GPT.from_pretrained("gpt2")
    np.testing.assert_array_equal(loaded.wte.weight.asnumpy(), model.wte.weight.asnumpy())


def test_unreachable_hub_name_says_what_to_do(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set.*local folder"):
        GPT.from_pretrained("openai-gpt")
    with pytest.raises(HubError, match="no such folder"):
        GPT.from_pretrained("./not/a/folder")
