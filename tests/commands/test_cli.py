import json
import subprocess
import sys

import pytest

from gptft.commands.cli import main


@pytest.fixture
def trained(finished_run):
    return finished_run


def test_train_writes_the_documented_output_folder(trained):
    folder, _ = trained
    run = folder / "run"
    for name in ("config.yaml", "metrics.jsonl", "learning_curves.png", "confusion_matrix.png",
                 "predictions-test.jsonl", "model/config.json", "model/model.safetensors", "model/head.safetensors",
                 "model/task.json", "model/tokenizer.json"):
        assert (run / name).is_file(), name
    assert any(p.name.startswith("step-") for p in (run / "checkpoints").iterdir())
    assert "save_every: 2" in (run / "config.yaml").read_text()  # the resolved config, overrides included


def test_predict_texts_and_files(trained, tmp_path, capsys):
    folder, _ = trained
    assert main(["predict", str(folder / "run" / "model"), "--text", "the film loved", "--text", "dull plot"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [0, 1]
    assert all(r["label"] in ("negative", "positive") and abs(sum(r["probabilities"].values()) - 1) < 1e-5
               for r in records)
    (tmp_path / "in.jsonl").write_text('{"text": "a great movie"}\n{"text": "slow story"}\n')
    assert main(["predict", str(folder / "run" / "model"), "--input", str(tmp_path / "in.jsonl"),
                 "--output", str(tmp_path / "out.jsonl")]) == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2



def test_predict_with_one_graph_for_all_lengths_gives_the_same_probabilities(trained, capsys):
    model = str(trained[0] / "run" / "model")
    texts = ["the film loved", "a dull and slow plot with nothing in it " * 3, "great"]  # two batch lengths
    outputs = []
    for extra in ([], ["--dynamic-length", "--batch-size", "2"]):
        assert main(["predict", model, *[a for t in texts for a in ("--text", t)], *extra]) == 0
        outputs.append([json.loads(line) for line in capsys.readouterr().out.strip().splitlines()])
    for plain, dynamic in zip(*outputs):
        assert plain["id"] == dynamic["id"] and plain["label"] == dynamic["label"]
        for label, p in plain["probabilities"].items():
            assert dynamic["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_eval_reports_the_test_metrics(trained, capsys):
    folder, _ = trained
    assert main(["eval", str(folder / "run")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    logged = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert result["split"] == "test" and result["accuracy"] == pytest.approx(logged["accuracy"])
    assert main(["eval", str(folder / "run"), "--train.dynamic_length=true"]) == 0  # one graph, same metrics
    dynamic = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert dynamic["accuracy"] == pytest.approx(logged["accuracy"])


@pytest.mark.parametrize("argv, message", [
    (["train", "missing.yaml"], "config file missing.yaml does not exist"),
    (["train", "{config}", "--train.lr=fast"], "train.lr: expected float, got str 'fast'"),
    (["train", "{config}", "--unknown"], "unrecognised argument '--unknown'"),
    (["predict", "{folder}", "--text", "x"], "has no task.json"),
    (["predict", "{folder}/run/model", "--text", "x", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["predict", "{folder}/run/model", "--text", "x", "--train.lr=1"], "`gptft predict` reads no config"),
    (["demo", "--output-dir", "{folder}/demo", "--train.epochs=1"], "`gptft demo` reads no config"),
])
def test_bad_input_is_one_line_and_exit_code_2(trained, capsys, argv, message):
    folder, config = trained
    argv = [a.format(config=config, folder=folder) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gptft: error: ") and message in err


def test_debug_shows_the_traceback(trained):
    folder, config = trained
    from gptft.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "train", str(config), "--train.lr=fast"])


@pytest.mark.parametrize("command, example", [("train", "gptft train configs/sst2.yaml --train.epochs=1"),
                                              ("pretrain", "gptft pretrain pretrain.yaml --train.epochs=1")])
def test_help_says_what_the_config_is_and_how_overrides_work(capsys, command, example):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "a YAML" in out and f"gptft schema {command}" in out  # the positional argument, and where its keys are
    assert "--section.key=value" in out and example in out


def test_schema_prints_every_key_documented(capsys):
    assert main(["schema", "train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  lm_coef: 0.5" in "\n".join(lines) and all("  # " in line for line in lines)


FREEZE_PROBE = """
import gc, sys
from gptft.commands.cli import main
code = main(sys.argv[1:])
print(code, gc.get_freeze_count(), "mindspore" in sys.modules)
"""


@pytest.mark.parametrize("argv, freezes", [(["eval", "no-such-run"], True), (["schema", "train"], False)])
def test_commands_that_compile_freeze_mindspores_objects_and_the_others_do_not_load_it(tmp_path, argv, freezes):
    """MindSpore collects garbage before each compile: a command that compiles freezes what the imports made,
    so those collections skip it; `schema` (like `demo`'s parent and `doctor`) never loads MindSpore."""
    done = subprocess.run([sys.executable, "-c", FREEZE_PROBE, *argv], capture_output=True, text=True, cwd=tmp_path)
    code, frozen, loaded = done.stdout.split()[-3:]
    if freezes:
        assert (code, loaded) == ("2", "True") and int(frozen) > 100_000, done.stdout + done.stderr
    else:
        assert (code, frozen, loaded) == ("0", "0", "False"), done.stdout + done.stderr
