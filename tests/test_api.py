import subprocess
import sys

import gptft


def test_every_public_name_imports():
    for name in gptft.__all__:
        assert getattr(gptft, name) is not None


def test_import_gptft_does_not_import_mindspore():
    """The CLI sets MindSpore's log level, and `gptft doctor` runs, before MindSpore is imported."""
    code = "import sys, gptft; print('mindspore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
