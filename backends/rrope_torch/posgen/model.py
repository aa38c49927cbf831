"""The PosGen model: a small pre-LN decoder-only Transformer whose only variable part is the position encoding.

Block: ``x += Attn(LN(x))``; ``x += MLP(LN(x))`` (MLP: ``d -> 4d -> d``, GELU); causal attention by
``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` with q and k rotated by
:class:`rrope_torch.RotaryEmbedding`. Token embedding in, final LayerNorm, untied linear head out.
The paper used a T5-small-sized decoder (6 layers, d_model 512, 8 heads); the rotary encoding has
no parameters, so every variant has the same parameters and, for one seed, the same initial weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad

from ..module import RotaryEmbedding

__all__ = ["VARIANTS", "rope_config", "PosGenTransformer"]

#: Position encodings by name. ``nope`` (no position encoding) is a sanity baseline.
VARIANTS = ("rope", "resonance", "yarn", "resonance_yarn", "nope")


def rope_config(
    variant: str,
    head_dim: int,
    train_len: int,
    test_len: int,
    *,
    base: float = 10000.0,
    beta_fast: float = 2.0,
    beta_slow: float = 1.0,
) -> rr.RopeConfig | None:
    """The :class:`rrope_core.RopeConfig` of ``variant`` (``None`` for ``nope``).

    YaRN: ``factor = test_len / train_len``, ``original_max_position = train_len``. The defaults
    ``beta_fast=2, beta_slow=1`` are those of the paper's PosGen code for its tiny models
    (transformers' defaults, 32 and 1, are meant for LLM context lengths).
    """
    if variant not in VARIANTS:
        raise bad("variant", variant, f"must be one of {VARIANTS}", RopeInputError)
    if variant == "nope":
        return None
    scaling = None
    if variant in ("yarn", "resonance_yarn"):
        scaling = rr.YaRN(test_len / train_len, train_len, beta_fast=beta_fast, beta_slow=beta_slow)
    return rr.RopeConfig(head_dim=head_dim, base=base, scaling=scaling, resonance=variant.startswith("resonance"))


class Attention(nn.Module):
    """Causal multi-head self-attention; q and k rotated at positions ``0..L-1`` when ``rope`` is set."""

    def __init__(self, d_model: int, n_heads: int, rope: rr.RopeConfig | None, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.rotary = None if rope is None else RotaryEmbedding(rope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            q, k = self.rotary(q, k, torch.arange(length, device=x.device))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
    """Pre-LN block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, d_model: int, n_heads: int, rope: rr.RopeConfig | None, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, rope, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.mlp(self.ln2(x)))


class PosGenTransformer(nn.Module):
    """``(B, L)`` int tokens -> ``(B, L, vocab)`` next-token logits."""

    def __init__(
        self,
        vocab: int,
        rope: rr.RopeConfig | None,
        *,
        n_layers: int = 6,
        d_model: int = 512,
        n_heads: int = 8,
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model % n_heads:
            raise bad("d_model", d_model, f"must be divisible by n_heads={n_heads}", RopeInputError)
        if rope is not None and rope.head_dim != d_model // n_heads:
            raise bad(
                "rope.head_dim", rope.head_dim, f"must be d_model // n_heads = {d_model // n_heads}", RopeInputError
            )
        self.rope = rope
        self.embed = nn.Embedding(vocab, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, rope, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(tokens))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))
