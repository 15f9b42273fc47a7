"""The GPT backbone as plain MindSpore cells, with the LM head tied to the token embedding.

One code path serves GPT-1 (Radford et al. 2018: post-LN blocks, no final norm) and GPT-2 (Radford et al.
2019: pre-LN blocks, a final `ln_f`); `GPTConfig.layout` switches between them. The same cells run in
PyNative mode and compiled (GRAPH_MODE or `mindspore.jit`): the only Python-level branches read
constants (the layout, the training flag), which graph compilation folds away.

Parameter names follow the Hugging Face checkpoints (`wte`, `wpe`, `h.N.attn.c_attn`, `ln_1`, ...), so the
weight table in `hf.py` stays short. Linear weights are stored `(out, in)` as in `nn.Dense`; the
released checkpoints use `Conv1D`, stored `(in, out)`, and are transposed on import.
"""

import math
from dataclasses import replace

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from . import hf
from .config import GPTConfig
from .layers import ACTIVATIONS, Dropout, LayerNorm, Linear, named_parameters
from .shared_graph import SharedGraphCell

# Added to the attention scores of future positions. Large enough that softmax gives them exactly zero
# weight in float32, small enough to stay finite.
_MASKED = -1e9


def _normal(rng: np.random.Generator, shape, std: float) -> Tensor:
    return Tensor(rng.normal(0.0, std, size=shape).astype(np.float32))


def _linear(rng: np.random.Generator, n_in: int, n_out: int, std: float) -> Linear:
    return Linear(_normal(rng, (n_out, n_in), std), Tensor(np.zeros(n_out, np.float32)))


class Embedding(nn.Cell):
    """A lookup table whose parameter is named `weight` (`nn.Embedding` says `embedding_table`).

    `added`, when set, holds further rows kept apart from `weight` so they can train while it stays
    frozen (the task tokens under LoRA, see `lora.py`); `table()` is the whole table either way.
    """

    def __init__(self, table: Tensor):
        super().__init__()
        self.weight = Parameter(table, name="weight")
        self.added = None

    def table(self):
        if self.added is None:
            return self.weight
        return ops.concat((self.weight, self.added))

    def construct(self, ids):
        return ops.gather(self.table(), ids, 0)


class CausalSelfAttention(nn.Cell):
    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        super().__init__()
        self.n_head = config.n_head
        self.head_size = config.head_size
        self.scale = 1.0 / math.sqrt(config.head_size)
        self.c_attn = _linear(rng, config.n_embd, 3 * config.n_embd, config.init_std)
        self.c_proj = _linear(rng, config.n_embd, config.n_embd, config.init_std)
        self.attn_dropout = Dropout(config.attn_pdrop, select=True)
        self.resid_dropout = Dropout(config.resid_pdrop)
        # Built once here; construct slices it to the sequence length, which compiles to a constant.
        causal = np.triu(np.full((config.block_size, config.block_size), _MASKED, np.float32), k=1)
        self.causal_mask = Tensor(causal[None, None])  # (1, 1, block, block)
        self.qk = ops.BatchMatMul(transpose_b=True)
        self.av = ops.BatchMatMul()
        # The primitive, not ops.split: the functional form cannot count its outputs when the sequence
        # length is dynamic (one graph for every batch length, see TrainStep.compile_for_any_length).
        self.split_qkv = ops.Split(axis=-1, output_num=3)

    def _heads(self, x, T):
        return ops.transpose(x.reshape(-1, T, self.n_head, self.head_size), (0, 2, 1, 3))  # (B, nh, T, hs)

    def construct(self, x, T, keep_probs=None, keep_out=None, cache=None):
        # x: (B * T, C), the rows of B sequences of T tokens (see GPT.construct).
        # cache: None, or (keys, values, write, bias) for generation: earlier keys and values
        # (B, nh, S, hs), a one-hot (B, 1, S, T) that puts each new token's key and value into its slot, and
        # the (B, 1, T, S) scores to add (0 for the slots a token sees). Returns the updated keys and values too.
        C = x.shape[-1]
        # Split, then move heads forward: far faster on CPU than indexing a (3, B, nh, T, hs) tensor.
        q, k, v = self.split_qkv(self.c_attn(x))
        q, k, v = self._heads(q, T), self._heads(k, T), self._heads(v, T)
        if cache is None:
            bias = self.causal_mask[:, :, :T, :T]
        else:
            k_cache, v_cache, write, bias = cache
            kept = 1.0 - write.sum(-1, keepdims=True)  # (B, 1, S, 1): zero at the slots written now
            write = ops.broadcast_to(write, (q.shape[0], self.n_head) + write.shape[2:])
            k = k_cache * kept + self.av(write, k)
            v = v_cache * kept + self.av(write, v)
        att = self.qk(q * self.scale, k)
        att = att + ops.broadcast_to(bias, att.shape)  # (B, nh, T, T or S); explicit, as in layers.Linear
        if self.training:
            # exp(log_softmax) rather than softmax in training: the same probabilities to float rounding,
            # but the gradient graph keeps two (B, nh, T, T) tensors of it instead of the five that
            # MindSpore's CPU Softmax keeps (docs/performance-cpu.md#graph-memory). In inference, where
            # nothing is kept, Softmax is the faster kernel.
            probs = ops.exp(ops.log_softmax(att, axis=-1))
        else:
            probs = ops.softmax(att, axis=-1)
        att = self.attn_dropout(probs, keep_probs)
        y = self.av(att, v)  # (B, nh, T, hs)
        y = ops.transpose(y, (0, 2, 1, 3)).reshape(-1, C)
        y = self.resid_dropout(self.c_proj(y), keep_out)
        if cache is None:
            return y
        return y, k, v


class MLP(nn.Cell):
    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        super().__init__()
        self.c_fc = _linear(rng, config.n_embd, config.inner_size, config.init_std)
        self.c_proj = _linear(rng, config.inner_size, config.n_embd, config.init_std)
        self.act = ACTIVATIONS[config.activation]
        self.dropout = Dropout(config.resid_pdrop)

    def construct(self, x, keep=None):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))), keep)


class Block(SharedGraphCell):
    """One transformer block.

    GPT-1 is post-LN: `x = ln_1(x + attn(x)); x = ln_2(x + mlp(x))`, so the residual stream is normalised
    after every add and the model needs no final norm. GPT-2 moved the norms in front of each sub-layer
    (`x = x + attn(ln_1(x))`), which keeps the residual path an identity and trains deeper stacks.

    The blocks of a model that share a structure compile as one graph (`shared_graph.py`).
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        super().__init__()
        self.pre_ln = config.layout == "pre_ln"
        self.ln_1 = LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, rng)
        self.ln_2 = LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self.mlp = MLP(config, rng)

    def construct(self, x, T, keep, cache):
        # No argument has a default, as mindspore.lazy_inline asks of a cell compiled once for its copies.
        # x: (B * T, C) rows, T tokens a sequence (see GPT.construct).
        # keep: None (masks drawn in the graph) or the (attention, attention output, MLP) keep masks.
        # cache: None, or the attention's key/value cache for generation (CausalSelfAttention.construct);
        # then the block returns its output and the updated keys and values.
        probs, attn_out, mlp_out = (None, None, None) if keep is None else keep
        out = self.attn(self.ln_1(x) if self.pre_ln else x, T, probs, attn_out, cache)
        attended = out if cache is None else out[0]
        if self.pre_ln:
            x = x + attended
            x = x + self.mlp(self.ln_2(x), mlp_out)
        else:
            x = self.ln_1(x + attended)
            x = self.ln_2(x + self.mlp(x, mlp_out))
        if cache is None:
            return x
        return x, out[1], out[2]


class GPT(nn.Cell):
    """A decoder-only GPT: token and learned position embeddings, causal blocks, a tied LM head.

    Calling the model on int32 token ids `(B, T)` returns the final hidden states `(B, T, n_embd)`;
    `lm_logits` turns hidden states into next-token logits with the token embedding as the output matrix.
    Sequences are right-padded: attention is causal, so padding after a token cannot change its state.
    In training, `model(ids, model.draw_keep_masks(B, T))` passes dropout masks drawn on the host (one
    multiply each in the graph) instead of hashing them inside the graph; the masks are the same.

    Args:
        config: the model's shape.
        seed: seeds the weight initialisation (normal, std `config.init_std`; biases zero, norms one).

    Example:
        >>> model = GPT(GPTConfig.preset("tiny"))
        >>> hidden = model(ms.Tensor(np.zeros((2, 5), np.int32)))   # (2, 5, 32)
        >>> logits = model.lm_logits(hidden)                          # (2, 5, 99)
    """

    def __init__(self, config: GPTConfig, seed: int = 0):
        super().__init__()
        self.config = config
        rng = np.random.default_rng(seed)
        self.wte = Embedding(_normal(rng, (config.vocab_size, config.n_embd), config.init_std))
        self.wpe = Embedding(_normal(rng, (config.block_size, config.n_embd), config.init_std))
        self.drop = Dropout(config.embd_pdrop)
        self.h = nn.CellList([Block(config, rng) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, config.layer_norm_epsilon) if config.layout == "pre_ln" else None
        self.position_ids = Tensor(np.arange(config.block_size, dtype=np.int32))
        self.logits_matmul = ops.MatMul(transpose_b=True)
        self.lora = None  # the LoRAConfig of the adapters `lora.add_adapters` attached, if any
        # A new Cell is in eval mode but its compile phase says "train", so a graph compiled before the
        # first set_train(True) is cached under "train" and reused with dropout off (MindSpore 2.7).
        # Setting the mode explicitly keeps the phase and the flag in step.
        self.set_train(False)

    def construct(self, ids, keep=None, cache=None):
        # cache: None, or (positions, caches, write, bias) for generation (model/generation.py): the
        # tokens' positions (B, T), every block's keys then values, and the slots written and seen (see
        # CausalSelfAttention.construct). Then the updated caches are returned beside the hidden states.
        # Between the embeddings and the output the hidden states are (B * T, C) rows, the shape every
        # linear layer and layer norm computes on, so none of them reshapes its input and back: a reshape
        # costs no time, but each is one more node in the graph to compile and in its gradient.
        T, C = ids.shape[-1], self.config.n_embd
        updated = ()
        if cache is not None:
            positions, caches, write, bias = cache
            x = (self.wte(ids) + self.wpe(positions)).reshape(-1, C)
            for i, block in enumerate(self.h):
                x, k, v = block(x, T, None, (caches[2 * i], caches[2 * i + 1], write, bias))
                updated = updated + (k, v)
        else:
            x = self.wte(ids)
            x = (x + ops.broadcast_to(self.wpe(self.position_ids[:T]), x.shape)).reshape(-1, C)  # as in layers.Linear
            if keep is None:
                x = self.drop(x)
                for block in self.h:
                    x = block(x, T, None, None)
            else:  # keep[0] for the embeddings, then three masks per block (see draw_keep_masks)
                x = self.drop(x, keep[0])
                for i, block in enumerate(self.h):
                    x = block(x, T, keep[1 + 3 * i:4 + 3 * i], None)
        if self.ln_f is not None:
            x = self.ln_f(x)
        x = x.reshape(-1, T, C)
        if cache is None:
            return x
        return x, updated

    def generate(self, prompts, max_new_tokens: int = 20, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 0, stop=()) -> list[list[int]]:
        """Continue each prompt (a list of token ids; prompts may differ in length) by up to `max_new_tokens`.

        One forward pass over the prompts fills a key/value cache; each further token costs one pass over
        one token per prompt. `temperature` 0 is greedy; otherwise tokens are drawn from the softmax of the
        logits divided by `temperature`, kept to the `top_k` most likely (0: all) and to the smallest set
        whose probability reaches `top_p`. The same `seed` gives the same tokens. A prompt's generation
        ends at any token in `stop`, which is not returned. Runs compiled in GRAPH_MODE.

        Returns:
            The new tokens of each prompt, without the prompt.

        Raises:
            DataError: an empty prompt, a token outside the vocabulary, a prompt plus `max_new_tokens`
                longer than `block_size`, or a sampling setting out of range.

        Example:
            >>> tok = Tokenizer.from_pretrained("runs/demo/pretrain/model")
            >>> new = model.generate([tok.encode("The film")], max_new_tokens=20, temperature=0.8, top_k=40)
            >>> tok.decode(new[0])
        """
        from .generation import generate

        return generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed, stop)

    def draw_keep_masks(self, B: int, T: int, advance: bool = True) -> tuple:
        """The dropout masks of the next training call on `(B, T)` ids, drawn on the host: the embeddings'
        `(B * T, C)`, then per block the attention probabilities' `(B, n_head, T, T)` and the attention and
        MLP outputs' `(B * T, C)` (the blocks' rows, see `construct`). Counts the call (unless not
        `advance`), so checkpoints resume the same sequence of masks."""
        C, H = self.config.n_embd, self.config.n_head
        masks = [self.drop.draw((B * T, C), advance)]
        for block in self.h:
            masks += [block.attn.attn_dropout.draw((B, H, T, T), advance),
                      block.attn.resid_dropout.draw((B * T, C), advance), block.mlp.dropout.draw((B * T, C), advance)]
        return tuple(masks)

    def lm_logits(self, hidden):
        """Next-token logits `(..., vocab_size)` from hidden states `(..., n_embd)`, via the tied embedding."""
        flat = hidden.reshape(-1, hidden.shape[-1])
        return self.logits_matmul(flat, self.wte.table()).reshape(hidden.shape[:-1] + (-1,))

    def resize_token_embeddings(self, vocab_size: int, seed: int = 0) -> None:
        """Grow the vocabulary (e.g. by the task tokens): old rows kept, new rows drawn from N(0, init_std).

        The LM head reads the same table, so it stays tied. Shrinking is refused: it would drop trained rows.
        """
        if self.lora is not None:
            raise ValueError("resize the vocabulary before adding adapters")
        old = self.wte.weight.asnumpy()
        if vocab_size < old.shape[0]:
            raise ValueError(f"cannot shrink the vocabulary from {old.shape[0]} to {vocab_size} rows")
        if vocab_size == old.shape[0]:
            return
        rng = np.random.default_rng(seed)
        new_rows = rng.normal(0.0, self.config.init_std, size=(vocab_size - old.shape[0], old.shape[1]))
        table = np.concatenate([old, new_rows.astype(old.dtype)])
        self.wte.weight = Parameter(Tensor(table), name=self.wte.weight.name)
        self.config = replace(self.config, vocab_size=vocab_size)

    @classmethod
    def from_pretrained(cls, name_or_path, **overrides) -> "GPT":
        """Load released weights from a Hugging Face folder or hub name (`openai-gpt`, `gpt2`, `openai-community/...`).

        Args:
            name_or_path: a local folder, or a hub repository (fetched through `HF_ENDPOINT`).
            **overrides: `GPTConfig` fields to change that do not change a tensor's shape (e.g. dropouts).

        Raises:
            ModelFileError: a file is missing or unreadable, or a tensor is missing, unexpected or mis-shaped.
        """
        folder, config, weights = hf.read_folder(name_or_path)
        model = cls(replace(config, **overrides))
        params = named_parameters(model, weights_only=True)
        arrays = hf.from_hf_tensors(weights, {name: tuple(p.shape) for name, p in params.items()}, model.config, folder)
        for name, param in params.items():
            param.set_data(Tensor(arrays[name]))
        return model

    def reinitialize_blocks(self, first: int, seed: int = 0) -> None:
        """Give blocks `first`.. (and GPT-2's final norm, which reads the last block) the weights a fresh
        `GPT(config, seed)` has: layer transfer, where only the embeddings and the first `first` blocks keep
        their pre-trained weights (the paper's Figure 2, left, varies `first`)."""
        if not 0 <= first <= self.config.n_layer:
            raise ValueError(f"first must be in 0..{self.config.n_layer}, got {first}")
        if first == self.config.n_layer:
            return
        fresh = named_parameters(GPT(self.config, seed=seed), weights_only=True)
        starts = tuple(f"h.{i}." for i in range(first, self.config.n_layer)) + ("ln_f.",)
        for name, param in named_parameters(self, weights_only=True).items():
            if name.startswith(starts):
                param.set_data(fresh[name].data.copy())

    def save_pretrained(self, folder) -> None:
        """Write `config.json` and `model.safetensors` in the Hugging Face layout of this model's family."""
        hf.write_folder(folder, self.config, self.weight_arrays())

    def weight_arrays(self) -> dict:
        """Every weight as a NumPy array by name, low-rank adapters merged in: the plain GPT this model computes."""
        arrays = {name: p.asnumpy() for name, p in named_parameters(self, weights_only=True).items()}
        if self.lora is None:
            return arrays
        from .lora import merged_arrays

        return merged_arrays(self, arrays)

    def num_parameters(self) -> int:
        """Weights, trained or frozen (dropout state excluded)."""
        return sum(int(np.prod(p.shape)) for p in named_parameters(self, weights_only=True).values())
