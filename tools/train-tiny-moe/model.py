"""A qwen3moe-shaped transformer in torch, written to match llama.cpp's qwen3moe graph:
RMSNorm (eps 1e-6), attention with per-head RMS-normed q and k, NEOX rope, GQA, no biases;
MoE FFN: softmax router over all experts, top-k, selected weights renormalised to sum 1
(norm_topk_prob), SwiGLU experts; final RMSNorm and an untied output head."""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    n_vocab: int = 1024
    n_ctx: int = 256
    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 32
    n_expert: int = 16
    n_expert_used: int = 4
    n_ff_exp: int = 128
    rope_base: float = 10000.0
    eps: float = 1e-6

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(n_ctx, d, base):
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(n_ctx, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):  # x [B, H, T, D]; NEOX: dimension i pairs with i + D/2
    d = x.shape[-1] // 2
    x0, x1 = x[..., :d], x[..., d:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wq = nn.Linear(c.n_embd, c.n_head * c.head_dim, bias=False)
        self.wk = nn.Linear(c.n_embd, c.n_head_kv * c.head_dim, bias=False)
        self.wv = nn.Linear(c.n_embd, c.n_head_kv * c.head_dim, bias=False)
        self.wo = nn.Linear(c.n_head * c.head_dim, c.n_embd, bias=False)
        self.q_norm = RMSNorm(c.head_dim, c.eps)
        self.k_norm = RMSNorm(c.head_dim, c.eps)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        c = self.c
        q = self.q_norm(self.wq(x).view(B, T, c.n_head, c.head_dim)).transpose(1, 2)
        k = self.k_norm(self.wk(x).view(B, T, c.n_head_kv, c.head_dim)).transpose(1, 2)
        v = self.wv(x).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
        rep = c.n_head // c.n_head_kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(c.head_dim) + mask[:T, :T]
        y = att.softmax(-1) @ v
        return self.wo(y.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        X, Fd, E = c.n_expert, c.n_ff_exp, c.n_embd
        self.router = nn.Linear(E, X, bias=False)
        # One parameter per expert: slicing a stacked one would make every backward pass
        # materialise a full-size gradient per expert.
        self.gate = nn.ParameterList(nn.Parameter(torch.randn(Fd, E) / math.sqrt(E)) for _ in range(X))
        self.up = nn.ParameterList(nn.Parameter(torch.randn(Fd, E) / math.sqrt(E)) for _ in range(X))
        self.down = nn.ParameterList(nn.Parameter(torch.randn(E, Fd) / math.sqrt(Fd) * 0.5) for _ in range(X))

    def forward(self, x):
        c = self.c
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs = self.router(x).softmax(-1)
        topw, topi = probs.topk(c.n_expert_used, dim=-1)
        topw = topw / topw.sum(-1, keepdim=True)
        flat = topi.reshape(-1)
        order = flat.argsort()
        counts = torch.bincount(flat, minlength=c.n_expert).tolist()
        tok = order // c.n_expert_used
        w = topw.reshape(-1)[order]
        out = torch.zeros_like(x)
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            t = tok[start:start + n]
            xe = x[t]
            h = F.silu(xe @ self.gate[e].t()) * (xe @ self.up[e].t())
            out.index_add_(0, t, (h @ self.down[e].t()) * w[start:start + n, None])
            start += n
        # Switch-style load balancing: n_expert * sum_e (share of assignments) * (mean prob).
        share = torch.bincount(flat, minlength=c.n_expert).float() / flat.numel()
        aux = c.n_expert * (share * probs.mean(0)).sum()
        return out.view(shape), aux


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn_norm = RMSNorm(c.n_embd, c.eps)
        self.attn = Attention(c)
        self.ffn_norm = RMSNorm(c.n_embd, c.eps)
        self.moe = MoE(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        y, aux = self.moe(self.ffn_norm(x))
        return x + y, aux


class TinyMoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok_embd = nn.Embedding(c.n_vocab, c.n_embd)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.out_norm = RMSNorm(c.n_embd, c.eps)
        self.output = nn.Linear(c.n_embd, c.n_vocab, bias=False)
        cos, sin = rope_tables(c.n_ctx, c.head_dim // 1, c.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.full((c.n_ctx, c.n_ctx), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx):
        x = self.tok_embd(idx)
        aux = 0.0
        for b in self.blocks:
            x, a = b(x, self.cos, self.sin, self.mask)
            aux = aux + a
        return self.output(self.out_norm(x)), aux / len(self.blocks)
