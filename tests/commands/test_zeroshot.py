import json

import pytest

from gptft.commands.cli import main
from helpers import write_keyword_run

ZEROSHOT = 'zeroshot: {template: "{text} so", verbalizers: {negative: " dull", positive: " loved"}}'


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zeroshot-run")
    return write_keyword_run(folder, extra=[ZEROSHOT])  # a `gptft train` config with a zeroshot: section


def test_writes_metrics_and_predictions_like_train_and_never_over_results(config, tmp_path, capsys):
    out = tmp_path / "zs"
    assert main(["zeroshot", str(config), "--output-dir", str(out)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records] == ["validation", "test"]
    assert set(records[1]) == {"step", "split", "accuracy", "f1"}
    predictions = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()]
    assert len(predictions) == 16 and all(p["label"] in ("negative", "positive") for p in predictions)
    assert "verbalizers" in (out / "config.yaml").read_text()
    printed = capsys.readouterr().out
    assert f"test: accuracy {records[1]['accuracy']:.4f}" in printed
    before = (out / "metrics.jsonl").read_bytes()
    assert main(["zeroshot", str(config), "--output-dir", str(out)]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize("override, message", [
    ("--zeroshot.verbalizers={negative: ' dull'}", "zeroshot.verbalizers: give one word or phrase for every label; "
                                                   "missing: positive"),
    ("--zeroshot.template='{premise} so'", "zeroshot.template: {premise} is not a field of a classification task"),
    ("--task.kind=similarity", "zeroshot: a similarity task"),
    ("--zeroshot.template={premise} so", "the value is not valid YAML (expected '<document start>', but found "
                                         "'<scalar>'); quote a value that starts with {, [ or a quote"),
])
def test_bad_zeroshot_settings_are_one_line_and_exit_code_2(config, tmp_path, capsys, override, message):
    assert main(["zeroshot", str(config), "--output-dir", str(tmp_path / "zs"), override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "zs").exists()
