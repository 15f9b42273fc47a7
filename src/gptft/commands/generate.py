"""`gptft generate`: continue prompts with a model folder (a pre-training output, a released GPT, a run's model).

    >>> completions = generate_text("runs/demo/pretrain/model", ["The film"], max_new_tokens=30, temperature=0.8)
"""

from ..errors import DataError
from ..model.gpt import GPT
from ..model.tokenizer import END_OF_TEXT, Tokenizer
from ..training import device


def generate_text(model_dir, prompts: list[str], max_new_tokens: int = 40, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0, seed: int = 0, stop: list[str] = (), device_name: str = "cpu") -> list[str]:
    """The text each prompt continues with. Generation ends at the vocabulary's end-of-text token (when it
    has one) and the completion is cut before the first of the `stop` strings."""
    if not prompts or not all(p.strip() for p in prompts):
        raise DataError("give at least one prompt, and no empty one")
    device.setup(device_name, "graph")
    tokenizer = Tokenizer.from_pretrained(model_dir)
    model = GPT.from_pretrained(model_dir)
    stop_ids = {tokenizer.backend.token_to_id(END_OF_TEXT)} - {None}
    for text in stop:  # a stop string that is one token ends generation early; any other only cuts the text
        ids = tokenizer.encode(text)
        if len(ids) == 1:
            stop_ids.add(ids[0])
    new = model.generate(tokenizer.encode_batch(prompts), max_new_tokens, temperature, top_k, top_p, seed, stop_ids)
    completions = [tokenizer.decode(tokens) for tokens in new]
    for text in stop:
        completions = [c.split(text)[0] if text else c for c in completions]
    return completions
