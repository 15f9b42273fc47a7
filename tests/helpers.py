"""Helpers shared by several test files."""

import mindspore as ms
import numpy as np


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
