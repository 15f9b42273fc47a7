"""The benchmark's reference: the same GPT, task head and objective in PyTorch eager (never used by gptft).

Parameter names match gptft's structural names (`backbone.h.0.attn.c_attn.weight`, ...) and layouts
((out, in) linear weights), so one model's weights load into the other and both compute the same losses.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, n_embd, n_head, inner, eps, pdrop, pre_ln):
        super().__init__()
        self.pre_ln, self.n_head = pre_ln, n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd, eps=eps), nn.LayerNorm(n_embd, eps=eps)
        self.attn = nn.Module()
        self.attn.c_attn, self.attn.c_proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = nn.Linear(n_embd, inner), nn.Linear(inner, n_embd)
        self.pdrop = pdrop

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.attn.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.n_head)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        att = F.dropout(F.softmax(att, dim=-1), self.pdrop, self.training)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return F.dropout(self.attn.c_proj(y), self.pdrop, self.training)

    def mlp_out(self, x):
        return F.dropout(self.mlp.c_proj(F.gelu(self.mlp.c_fc(x), approximate="tanh")), self.pdrop, self.training)

    def forward(self, x):
        if self.pre_ln:
            x = x + self.attention(self.ln_1(x))
            return x + self.mlp_out(self.ln_2(x))
        x = self.ln_1(x + self.attention(x))
        return self.ln_2(x + self.mlp_out(x))


class TorchTaskModel(nn.Module):
    """Backbone + classification head, `loss(ids, positions, lm_mask, labels) -> (total, task, lm)` like gptft."""

    def __init__(self, config, num_labels: int, lm_coef: float):
        super().__init__()
        c = config
        self.backbone = nn.Module()
        self.backbone.wte, self.backbone.wpe = nn.Embedding(c.vocab_size, c.n_embd), nn.Embedding(c.block_size, c.n_embd)
        self.backbone.h = nn.ModuleList(Block(c.n_embd, c.n_head, c.inner_size, c.layer_norm_epsilon, c.resid_pdrop,
                                              c.layout == "pre_ln") for _ in range(c.n_layer))
        self.backbone.ln_f = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon) if c.layout == "pre_ln" else None
        self.head = nn.Module()
        self.head.linear = nn.Linear(c.n_embd, num_labels)
        self.embd_pdrop, self.lm_coef = c.embd_pdrop, lm_coef

    def hidden(self, ids):
        T = ids.shape[-1]
        x = F.dropout(self.backbone.wte(ids) + self.backbone.wpe(torch.arange(T)), self.embd_pdrop, self.training)
        for block in self.backbone.h:
            x = block(x)
        return self.backbone.ln_f(x) if self.backbone.ln_f is not None else x

    def loss(self, ids, positions, lm_mask, labels):
        B, S, T = ids.shape
        hidden = self.hidden(ids.view(B * S, T))  # (B*S, T, C)
        extract = hidden[torch.arange(B * S), positions.view(-1).clamp(min=0)].view(B, S, -1)[:, 0]
        task = F.cross_entropy(self.head.linear(F.dropout(extract, 0.1, self.training)), labels.long())
        if self.lm_coef == 0:
            return task, task, torch.zeros(())
        logits = hidden[:, :-1] @ self.backbone.wte.weight.T
        targets = ids.view(B * S, T)[:, 1:].long()
        mask = lm_mask.view(B * S, T)[:, 1:]
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        lm = (per_token * mask.reshape(-1)).sum() / mask.sum().clamp(min=1)
        return task + self.lm_coef * lm, task, lm

    def load_gptft(self, named: dict):
        """Copy weights from gptft's `named_parameters(task_model)` (NumPy arrays by structural name)."""
        self.load_state_dict({name: torch.from_numpy(named[name].copy()) for name in self.state_dict()})


def make_optimizer(model, lr=6.25e-5, weight_decay=0.01):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr)


def train_step(model, optimizer, batch, max_grad_norm=1.0):
    optimizer.zero_grad(set_to_none=True)
    total, task, lm = model.loss(*batch)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return float(total.detach())
