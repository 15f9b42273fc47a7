"""`gptft export` (MindIR, adapter-only) on one LoRA fine-tuning run made through the command line."""

import contextlib
import io
import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn
from safetensors.numpy import load_file

from gptft import TaskModel
from gptft.commands.cli import main
from gptft.commands.export import serving_inputs
from gptft.commands.inference import encode_rows, predict
from gptft.model.tokenizer import Tokenizer
from gptft.tasks.evaluation import predict_logits
from gptft.training import checkpoints as ckpt
from helpers import WORDS, write_keyword_run

ROWS = [{"text": " ".join(WORDS[i:i + n])} for i, n in ((0, 6), (3, 2), (5, 9), (2, 6), (8, 1))]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """(run folder, its stdout): rank-4 adapters on the attention projections, 12 steps."""
    folder = tmp_path_factory.mktemp("lora")
    config = write_keyword_run(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", str(config), "--output-dir", str(folder / "run"), "--train.epochs=1",
                     "--train.lora.rank=4", "--train.lora.alpha=8"]) == 0
    return folder / "run", out.getvalue()


def test_a_lora_run_trains_and_checkpoints_only_its_adapters_and_exports_merged_weights(lora_run):
    run, stdout = lora_run
    # tiny: 2 blocks of width 32; adapters on c_attn (32 -> 96) and attn.c_proj (32 -> 32); 3 task-token
    # rows; a linear head to 2 classes.
    adapters = 2 * 4 * ((32 + 96) + (32 + 32))
    trained = adapters + 3 * 32 + (32 * 2 + 2)
    merged = TaskModel.from_pretrained(run / "model")  # model/ is a plain model: the adapters are merged in
    assert merged.backbone.lora is None
    total = merged.backbone.num_parameters() + adapters + 32 * 2 + 2
    assert f"parameters: {trained:,} trained of {total:,} ({trained / total:.2%})" in stdout
    state = load_file(str(ckpt.list_checkpoints(run / "checkpoints")[-1] / ckpt.STATE))
    weights = {n for n in state if not n.startswith("optimizer.") and not n.endswith((".calls", ".key"))}
    assert sum(state[n].size for n in weights) == trained
    assert "model.backbone.h.0.attn.c_attn.weight" not in state and "model.backbone.wte.weight" not in state
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["vocab_size"] == Tokenizer.from_pretrained(run / "model").vocab_size
    assert "lora" not in json.dumps(config)
    assert {"adapter.json", "adapter.safetensors"} <= {p.name for p in (run / "model").iterdir()}


def test_adapter_only_export_is_small_and_predicts_what_the_merged_model_does(lora_run, tmp_path):
    run, _ = lora_run
    assert main(["export", str(run), "--adapter-only", "--output", str(tmp_path / "adapter")]) == 0
    files = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert files == ["adapter.json", "adapter.safetensors", "head.safetensors", "task.json", "tokenizer.json"]
    adapted = TaskModel.from_pretrained(tmp_path / "adapter")
    assert adapted.backbone.lora is not None
    size = sum(p.stat().st_size for p in (tmp_path / "adapter").iterdir() if p.suffix == ".safetensors")
    assert size < (run / "model" / "model.safetensors").stat().st_size / 5
    from_adapter = predict(tmp_path / "adapter", ROWS)
    from_merged = predict(run / "model", ROWS)
    for a, b in zip(from_adapter, from_merged):
        assert a["label"] == b["label"]
        for label in a["probabilities"]:
            assert a["probabilities"][label] == pytest.approx(b["probabilities"][label], abs=2e-6)


def test_mindir_gives_the_logits_predict_gives(lora_run, tmp_path):
    run, _ = lora_run
    out = tmp_path / "served"
    assert main(["export", str(run), "--format", "mindir", "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.mindir", "serving.json", "task.json", "tokenizer.json"]
    serving = json.loads((out / "serving.json").read_text())
    assert serving["labels"] == ["negative", "positive"] and serving["max_tokens"] == 32
    model = TaskModel.from_pretrained(run / "model")
    ms.set_context(mode=ms.GRAPH_MODE)
    graph = nn.GraphCell(ms.load(str(out / "model.mindir")))
    inputs = serving_inputs(out, ROWS, batch_size=2)  # made from the exported folder's tokenizer and task
    assert len({ids.shape for ids, _, _ in inputs}) > 1  # one graph serves every shape
    batches, order = encode_rows(model.task, Tokenizer.from_pretrained(run / "model"), ROWS, batch_size=2)
    assert [rows for _, _, rows in inputs] == [order[0:2], order[2:4], order[4:]]
    expected = predict_logits(model, batches)
    served = [row for ids, positions, _ in inputs for row in graph(Tensor(ids), Tensor(positions)).asnumpy()]
    np.testing.assert_allclose(np.stack(served), np.stack(expected), rtol=1e-5, atol=1e-6)
    records = predict(run / "model", ROWS)
    for position, logits in zip(order, served):
        probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert list(records[position]["probabilities"].values()) == pytest.approx(probabilities.tolist(), abs=2e-6)
    # Nothing is overwritten: a second export into the same folder is refused and leaves it as it was.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["export", str(run), "--format", "mindir", "--output", str(out)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_export_refusals_name_the_problem(lora_run, tmp_path, capsys):
    run, _ = lora_run
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in (run / "model").iterdir():
        if not path.name.startswith("adapter"):
            (plain / path.name).write_bytes(path.read_bytes())
    assert main(["export", str(plain), "--adapter-only"]) == 2
    assert "holds no adapters: the run did not train with train.lora" in capsys.readouterr().err
    assert main(["export", str(run), "--adapter-only", "--format", "mindir"]) == 2
    assert "does not combine with --format mindir" in capsys.readouterr().err
    assert main(["export", str(tmp_path)]) == 2
    assert "neither a `gptft train` run folder" in capsys.readouterr().err
    assert not (plain / "adapter").exists() and not (tmp_path / "export").exists()
