import json

import pytest

from gptft import GPT, Tokenizer
from gptft.commands.cli import main
from gptft.model.tokenizer import END_OF_TEXT
from helpers import write_keyword_run


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate")
    write_keyword_run(folder)
    return folder / "model"  # a GPT folder with its tokenizer, as pre-training writes it


def completions(capsys, *argv):
    assert main(["generate", *argv, "--jsonl"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]


def test_greedy_completions_are_the_models_and_stop_cuts_them(model_dir, capsys):
    prompts = ["the film was", "a slow"]
    records = completions(capsys, str(model_dir), "--prompt", prompts[0], "--prompt", prompts[1],
                          "--temperature", "0", "--max-new-tokens", "8")
    assert [r["prompt"] for r in records] == prompts
    tokenizer, model = Tokenizer.from_pretrained(model_dir), GPT.from_pretrained(model_dir)
    expected = model.generate(tokenizer.encode_batch(prompts), 8, temperature=0,
                              stop={tokenizer.backend.token_to_id(END_OF_TEXT)})
    assert [r["completion"] for r in records] == [tokenizer.decode(tokens) for tokens in expected]
    text = records[0]["completion"]
    assert len(text.strip()) > 2
    stop = text.strip()[1:3]
    cut = completions(capsys, str(model_dir), "--prompt", prompts[0], "--temperature", "0", "--max-new-tokens", "8",
                      "--stop", stop)
    assert cut[0]["completion"] == text.split(stop)[0]


def test_the_same_seed_gives_the_same_text(model_dir, capsys):
    args = [str(model_dir), "--prompt", "the", "--max-new-tokens", "12", "--top-k", "20"]
    first = completions(capsys, *args, "--seed", "3")
    assert first == completions(capsys, *args, "--seed", "3")
    assert first != completions(capsys, *args, "--seed", "4")


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "the", "--max-new-tokens", "40"], "plus 40 new tokens is longer than the model's 32 positions"),
    (["--prompt", " "], "no empty one"),
    (["--prompt", "the", "--top-p", "1.5"], "top_p in (0, 1]"),
])
def test_bad_requests_are_one_line_and_exit_code_2(model_dir, capsys, argv, message):
    assert main(["generate", str(model_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
