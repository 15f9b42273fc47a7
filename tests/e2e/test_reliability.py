"""Bad input through the command line: one line naming the problem, exit code 2, and every file already in
the output folder left exactly as it was."""

import csv
import hashlib

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from gptft.training import checkpoints as ckpt
from gptft.commands.cli import main


def snapshot(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def previous_run(finished_run):
    """A finished run whose output folder every bad invocation below points at."""
    folder, config = finished_run
    # An output folder with earlier work in it but no checkpoints: bad runs pointed here must not touch it.
    attempt = folder / "attempt"
    attempt.mkdir()
    (attempt / "notes.txt").write_text("my notes\n")
    (attempt / "metrics.jsonl").write_bytes((folder / "run" / "metrics.jsonl").read_bytes())
    return folder, config


def run_bad(argv, capsys, previous_run, message):
    folder, _ = previous_run
    before = {name: snapshot(folder / name) for name in ("run", "attempt")}
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gptft: error: "), err
    assert message in err, err
    assert {name: snapshot(folder / name) for name in ("run", "attempt")} == before


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("override, message", [
    ("--train.lrr=1", "train: unknown key(s) lrr"),
    ("--train.epochs=two", "train.epochs: expected int, got str 'two'"),
    ("--train.lr=-0.1", "train.lr must be positive"),
    ("--train.lm_coef=-1", "train.lm_coef must be >= 0"),
    ("--task.kind=summarise", "unknown task kind 'summarise'"),
    ("--task.head=no_such_head", "task.head: unknown head 'no_such_head'"),
    ("--device=tpu", "unknown device 'tpu'"),
])
def test_bad_config_values(previous_run, capsys, override, message):
    folder, config = previous_run
    run_bad(["train", str(config), "--output-dir", str(folder / "attempt"), override], capsys, previous_run, message)


def test_config_file_problems(previous_run, capsys, tmp_path):
    folder, config = previous_run
    out = str(folder / "attempt")
    run_bad(["train", str(tmp_path / "nope.yaml"), "--output-dir", out], capsys, previous_run, "does not exist")
    broken = write(tmp_path / "broken.yaml", config.read_text() + "train: {lr: [1\n")
    run_bad(["train", str(broken), "--output-dir", out], capsys, previous_run, "YAML syntax error at line")
    missing = write(tmp_path / "missing.yaml", "\n".join(config.read_text().splitlines()[:2]) + "\n")
    run_bad(["train", str(missing), "--output-dir", out], capsys, previous_run, "missing required key(s) data")


def data_variant(previous_run, tmp_path, rows, header=("text", "label"), extra=()):
    """The same run with its train.csv replaced by `rows`, written as raw lines (bytes allowed)."""
    folder, config = previous_run
    data = tmp_path / "data"
    data.mkdir()
    for split in ("validation", "test"):
        (data / f"{split}.csv").write_bytes((folder / f"{split}.csv").read_bytes())
    lines = [",".join(header).encode()] + [r if isinstance(r, bytes) else r.encode() for r in rows]
    (data / "train.csv").write_bytes(b"\n".join(lines) + (b"\n" if rows else b""))
    text = config.read_text().replace(f"dataset: {folder},", f"dataset: {data},")
    return write(tmp_path / "run.yaml", text + "\n".join(extra) + ("\n" if extra else ""))


@pytest.mark.parametrize("rows, header, extra, message", [
    (["the film,1"], ("review", "label"), (), "column(s) 'text' not found"),
    ([], ("text", "label"), (), "holds no rows"),
    (['"  ",1'], ("text", "label"), (), "row 0: the text in text is empty"),
    ([b"caf\xe9 film,1"], ("text", "label"), (), "not UTF-8 text (byte"),
    (["the film,3"], ("text", "label"), (), "label 3 is outside the task's labels 0..1"),
    (["the film,positive-ish"], ("text", "label"), (), "label 'positive-ish' is not one of the task's labels"),
    (["a,the film,1", "a,dull film,0"], ("id", "text", "label"), ("data: {id_column: id}",), "appears twice"),
])
def test_bad_training_data(previous_run, capsys, tmp_path, rows, header, extra, message):
    folder, _ = previous_run
    config = data_variant(previous_run, tmp_path, rows, header)
    if extra:  # merge the data override into the config's data line
        text = config.read_text().replace("buckets: [24],", "buckets: [24], id_column: id,")
        config.write_text(text)
    run_bad(["train", str(config), "--output-dir", str(folder / "attempt")], capsys, previous_run, message)


def test_scores_and_answers_that_do_not_fit(previous_run, capsys, tmp_path):
    folder, _ = previous_run
    data = tmp_path / "sts"
    data.mkdir()
    for split in ("train", "validation", "test"):
        with open(data / f"{split}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([["text_a", "text_b", "label"], ["a film", "the film", "NaN" if split == "train" else 1.0]])
    config = write(tmp_path / "sts.yaml", f"model: {{pretrained: {folder / 'model'}}}\ntask: {{kind: similarity}}\n"
                   f"data: {{dataset: {data}, validation: validation, test: test}}\n")
    run_bad(["train", str(config), "--output-dir", str(folder / "attempt")], capsys, previous_run, "the label is missing")
    choices = tmp_path / "mc"
    choices.mkdir()
    for split in ("train", "validation", "test"):
        with open(choices / f"{split}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([["context", "a0", "a1", "label"], ["the film", "great", "dull", 5]])
    config = write(tmp_path / "mc.yaml", f"model: {{pretrained: {folder / 'model'}}}\ntask: {{kind: multiple_choice}}\n"
                   f"data: {{dataset: {choices}, validation: validation, test: test, columns: {{choices: [a0, a1]}}}}\n")
    run_bad(["train", str(config), "--output-dir", str(folder / "attempt")], capsys, previous_run,
            "answer index 5 is beyond the 2 answers")


def test_an_answer_too_long_even_with_the_context_cut_to_nothing(previous_run, capsys, tmp_path):
    folder, _ = previous_run
    data = tmp_path / "mc"
    data.mkdir()
    long_answer = " ".join(["film"] * 40)
    for split in ("train", "validation", "test"):
        with open(data / f"{split}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([["context", "a0", "a1", "label"], ["the plot", "great", long_answer, 0]])
    config = write(tmp_path / "mc.yaml", f"model: {{pretrained: {folder / 'model'}}}\n"
                   "task: {kind: multiple_choice, max_length: 24, truncation: first}\n"
                   f"data: {{dataset: {data}, validation: validation, test: test, columns: {{choices: [a0, a1]}}}}\n")
    run_bad(["train", str(config), "--output-dir", str(folder / "attempt")], capsys, previous_run,
            "row 0: the second part alone has 40 tokens")


def broken_model_folder(previous_run, destination, keep=("config.json", "tokenizer.json")):
    """A copy of the run's model folder holding only the files in `keep`."""
    folder, _ = previous_run
    destination.mkdir()
    for name in keep:
        (destination / name).write_bytes((folder / "model" / name).read_bytes())
    return destination


def test_model_folder_problems(previous_run, capsys, tmp_path):
    folder, config = previous_run
    original = folder / "model"

    def refused(model_dir, message):
        run_bad(["train", str(config), "--output-dir", str(folder / "attempt"), f"--model.pretrained={model_dir}"],
                capsys, previous_run, message)

    refused(broken_model_folder(previous_run, tmp_path / "empty", keep=("tokenizer.json",)), "has no config.json")
    pickled = broken_model_folder(previous_run, tmp_path / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not unpickled")
    refused(pickled, "never unpickles")
    truncated = broken_model_folder(previous_run, tmp_path / "truncated")
    (truncated / "model.safetensors").write_bytes((original / "model.safetensors").read_bytes()[:5000])
    refused(truncated, "not a readable safetensors file")
    misshaped = broken_model_folder(previous_run, tmp_path / "misshaped")
    tensors = load_file(str(original / "model.safetensors"))
    tensors["h.0.attn.c_proj.weight"] = tensors["h.0.attn.c_proj.weight"][:, :16]
    del tensors["h.1.ln_1.bias"]
    tensors["extra.weight"] = np.zeros(2, np.float32)
    save_file(tensors, str(misshaped / "model.safetensors"))
    folder_before = snapshot(misshaped)
    refused(misshaped, "tensor h.0.attn.c_proj.weight has shape (32, 16)")
    assert snapshot(misshaped) == folder_before
    # A tensor whose shape contradicts a config.json key is refused naming the key, as transformers would.
    narrow = broken_model_folder(previous_run, tmp_path / "narrow")
    tensors = load_file(str(original / "model.safetensors"))
    tensors["h.0.mlp.c_fc.weight"] = tensors["h.0.mlp.c_fc.weight"][:, :64]
    save_file(tensors, str(narrow / "model.safetensors"))
    refused(narrow, "4 * n_embd is 128 but h.0.mlp.c_fc.weight has 64 outputs")


def test_a_tokenizer_that_does_not_fit_the_model(previous_run, capsys, gpt2_folder):
    folder, config = previous_run
    run_bad(["train", str(config), "--output-dir", str(folder / "attempt"), f"--tokenizer={gpt2_folder}"], capsys,
            previous_run, "they do not belong together")


def test_resume_and_output_folder_problems(previous_run, capsys, tmp_path):
    folder, config = previous_run
    run_bad(["train", str(config), "--output-dir", str(folder / "run")], capsys, previous_run,
            "holds another run's checkpoints; pass --resume")
    # --resume into a folder of another config's run (--resume into a folder with no run starts it from
    # step 0: tests/e2e/test_interrupt.py's reference runs start that way).
    run_bad(["train", str(config), "--output-dir", str(folder / "run"), "--resume", "--train.epochs=3"], capsys,
            previous_run, "holds a run of a different config (train.epochs is 1 there, 3 here)")


def test_corrupt_latest_checkpoint_falls_back_on_resume(previous_run, capsys, tmp_path):
    folder, config = previous_run
    run = tmp_path / "run"
    assert main(["train", str(config), "--output-dir", str(run), "--train.epochs=1", "--train.save_every=2",
                 "--train.keep_last=5"]) == 0
    checkpoints = ckpt.list_checkpoints(run / "checkpoints")
    newest, previous = checkpoints[-1], checkpoints[-2]
    state = newest / ckpt.STATE
    state.write_bytes(state.read_bytes()[:-100])  # truncated, as by a disk that filled up
    assert main(["train", str(config), "--output-dir", str(run), "--resume", "--train.epochs=1",
                 "--train.save_every=2", "--train.keep_last=5"]) == 0
    out = capsys.readouterr().out
    assert f"skipping checkpoint {newest}: state.safetensors does not match its checksum" in out
    assert f"resumed from {previous}" in out


def test_out_of_disk_space_while_checkpointing(previous_run, capsys, tmp_path, monkeypatch):
    import errno

    folder, config = previous_run
    calls = {"n": 0}
    original = ckpt.save_file

    def fills_up(tensors, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(tensors, path, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", fills_up)
    run = tmp_path / "run"
    assert main(["train", str(config), "--output-dir", str(run), "--train.save_every=1", "--train.keep_last=10"]) == 2
    err = capsys.readouterr().err
    assert "could not write the checkpoint of step 3" in err and "No space left on device" in err
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step-00000001", "step-00000002"]
    assert all(ckpt.verify(p) is None for p in ckpt.list_checkpoints(run / "checkpoints"))
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".partial")]


def test_a_nan_loss_stops_with_the_step(previous_run, capsys, tmp_path):
    folder, config = previous_run
    assert main(["train", str(config), "--output-dir", str(tmp_path / "run"), "--train.lr=1.0e+30",
                 "--train.max_grad_norm=0", "--train.warmup=0"]) == 2
    err = capsys.readouterr().err
    assert "the loss became" in err and "at step" in err and "lower train.lr" in err
