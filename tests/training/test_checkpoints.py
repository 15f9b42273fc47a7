import errno
import json

import numpy as np
import pytest
from mindspore import Parameter, Tensor

from gptft.training import checkpoints as ckpt
from gptft.errors import ModelFileError


def params(value=0.0):
    return {"w": Parameter(Tensor(np.full((2, 3), value, np.float32)), name="w"),
            "count": Parameter(Tensor(np.array([7], np.int32)), name="count", requires_grad=False)}


def test_round_trip_restores_values_and_state(tmp_path):
    saved = params(1.5)
    path = ckpt.save_checkpoint(tmp_path, 12, saved, {"best_value": 0.9})
    assert path.name == "step-00000012" and ckpt.verify(path) is None
    target = params(0.0)
    state = ckpt.load_checkpoint(path, target)
    assert state == {"best_value": 0.9, "step": 12}
    np.testing.assert_array_equal(target["w"].asnumpy(), 1.5)
    np.testing.assert_array_equal(target["count"].asnumpy(), [7])


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path):
    ckpt.save_checkpoint(tmp_path, 1, params(1.0), {})
    newest = ckpt.save_checkpoint(tmp_path, 2, params(2.0), {})
    state_file = newest / ckpt.STATE
    state_file.write_bytes(state_file.read_bytes()[:-10])  # truncated
    warnings = []
    good = ckpt.latest_good(tmp_path, warn=warnings.append)
    assert good.name == "step-00000001"
    assert "step-00000002" in warnings[0] and "checksum" in warnings[0]
    with pytest.raises(ModelFileError, match="unusable: state.safetensors does not match its checksum"):
        ckpt.load_checkpoint(newest, params())


def test_a_checkpoint_without_manifest_is_incomplete(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 3, params(), {})
    (path / ckpt.MANIFEST).unlink()
    assert "never finished" in ckpt.verify(path)
    assert ckpt.latest_good(tmp_path, warn=lambda m: None) is None


def test_a_checkpoint_of_another_model_is_refused_whole(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 1, params(3.0), {})
    other = {"w": Parameter(Tensor(np.zeros((3, 3), np.float32)), name="w"),
             "extra": Parameter(Tensor(np.zeros(1, np.float32)), name="extra")}
    with pytest.raises(ModelFileError) as error:
        ckpt.load_checkpoint(path, other)
    assert "w has shape (2, 3), expected (3, 3)" in str(error.value) and "missing extra" in str(error.value)
    np.testing.assert_array_equal(other["w"].asnumpy(), 0.0)  # nothing was half-loaded


def test_loading_a_subset_reads_only_its_tensors(tmp_path, monkeypatch):
    # Restoring the best weights after training must not read the optimizer state into memory.
    saved = {**params(2.5), "adam_m.w": Parameter(Tensor(np.full((2, 3), 9.0, np.float32)), name="adam_m.w")}
    path = ckpt.save_checkpoint(tmp_path, 4, saved, {})
    read = []
    real_open = ckpt.safe_open

    class Recording:
        def __init__(self, *args, **kwargs):
            self.file = real_open(*args, **kwargs)

        def __enter__(self):
            self.inner = self.file.__enter__()
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def get_tensor(self, name):
            read.append(name)
            return self.inner.get_tensor(name)

    monkeypatch.setattr(ckpt, "safe_open", Recording)
    weights = {"w": Parameter(Tensor(np.zeros((2, 3), np.float32)), name="w")}
    ckpt.load_checkpoint(path, weights, allow_extra=True)
    assert read == ["w"]
    np.testing.assert_array_equal(weights["w"].asnumpy(), 2.5)
    with pytest.raises(ModelFileError, match="unexpected adam_m.w"):
        ckpt.load_checkpoint(path, {"w": weights["w"], "count": params()["count"]})
    assert read == ["w"]  # a refused load reads no tensor


def test_out_of_disk_space_leaves_earlier_checkpoints_intact(tmp_path, monkeypatch):
    first = ckpt.save_checkpoint(tmp_path, 1, params(1.0), {"note": "good"})
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(tmp_path, 2, params(2.0), {})
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000001"]  # no partial folder left behind
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before


def test_prune_keeps_the_newest_and_the_best(tmp_path):
    for step in (1, 2, 3, 4, 5):
        ckpt.save_checkpoint(tmp_path, step, params(step), {})
    ckpt.prune(tmp_path, keep_last=2, keep={2})
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000002", "step-00000004", "step-00000005"]


def test_manifest_records_checksums(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 9, params(), {})
    manifest = json.loads((path / ckpt.MANIFEST).read_text())
    assert manifest["step"] == 9 and set(manifest["sha256"]) == {ckpt.STATE, ckpt.TRAINER}
