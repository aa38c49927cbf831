"""The PosGen model: a small decoder-only Transformer whose only variable part is the position encoding.

Two blocks (``block=``), both pre-norm, causal, with q and k rotated by
``rrope_torch.RotaryEmbedding``:

- ``pre_ln`` (ours): ``x += Attn(LN(x))``; ``x += MLP(LN(x))`` (``d -> 4d -> d``, GELU), biases,
  attention logits scaled by ``1/sqrt(head_dim)``, PyTorch's default init, untied linear head.
- ``t5``: the official code's ``CustomDecoderOnlyT5`` (``src/models/components/custom_decoder.py``
  of sheryc/resonance_rope, built from transformers' T5 layers with the t5-small template): RMSNorm
  without bias (eps 1e-6), no biases anywhere, ReLU FFN ``d -> 4d -> d`` (t5-small: 512 -> 2048)
  with dropout inside, *unscaled* attention logits ``q.k``, T5's init (q ``N(0, (d*d_head)^-1/2)``,
  k and v ``N(0, d^-1/2)``, out ``N(0, (H*d_head)^-1/2)``, wi ``N(0, d^-1/2)``, wo ``N(0, (4d)^-1/2)``,
  embedding ``N(0, 1)``), final RMSNorm and dropout, and the output tied to the embedding with
  T5's rescale ``logits = (h * d^-1/2) @ E^T``.

``freeze_ffn``: the FFN and its norm are never trained. The official code does this, by the look of
it unintentionally: ``CustomDecoderOnlyT5.__init__`` sets ``requires_grad = False`` on every
decoder parameter named ``block.*.layer.1.*`` (a T5 decoder's cross-attention), but its
``CustomT5Block`` has no cross-attention, so ``layer[1]`` is the FFN.

``eval_rope``: the position encoding in eval mode (default: ``rope``). The official code trains its
YaRN models with the unscaled table and uses the scaled one only in eval mode
(``rotary_embedding_original if self.training else rotary_embedding_scaled``, custom_decoder.py).
The rotary encoding has no parameters, so every variant has the same parameters and, for one seed,
the same initial weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad
from rrope_torch import RotaryEmbedding

from .protocol import BLOCKS

__all__ = ["PosGenTransformer", "attention_scale"]


def _norm(block: str, d_model: int) -> nn.Module:
    return nn.LayerNorm(d_model) if block == "pre_ln" else nn.RMSNorm(d_model, eps=1e-6)


def attention_scale(block: str, head_dim: int) -> float:
    """The factor on ``q.k``: ``1/sqrt(head_dim)``, or 1 for T5 (its init absorbs it)."""
    return 1.0 if block == "t5" else 1.0 / math.sqrt(head_dim)


class Attention(nn.Module):
    """Causal multi-head self-attention; q and k rotated at positions ``0..L-1`` when a rope is set."""

    def __init__(self, d_model, n_heads, rope, dropout, block="pre_ln", eval_rope=None):
        super().__init__()
        self.n_heads, self.dropout, self.block = n_heads, dropout, block
        bias = block == "pre_ln"
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.rotary = None if rope is None else RotaryEmbedding(rope)
        eval_rope = rope if eval_rope is None else eval_rope
        self.eval_rotary = None if eval_rope is None else RotaryEmbedding(eval_rope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        rotary = self.rotary if self.training else self.eval_rotary
        if rotary is not None:
            q, k = rotary(q, k, torch.arange(length, device=x.device))
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            is_causal=True,
            dropout_p=self.dropout if self.training else 0.0,
            scale=attention_scale(self.block, d // self.n_heads),
        )
        return self.out(y.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
    """Pre-norm block: ``x + drop(Attn(norm(x)))``, then ``x + drop(MLP(norm(x)))``."""

    def __init__(self, d_model, n_heads, rope, dropout, block="pre_ln", eval_rope=None):
        super().__init__()
        self.ln1, self.ln2 = _norm(block, d_model), _norm(block, d_model)
        self.attn = Attention(d_model, n_heads, rope, dropout, block, eval_rope)
        if block == "pre_ln":
            self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        else:  # T5DenseActDense: wi, ReLU, dropout, wo
            self.mlp = nn.Sequential(
                nn.Linear(d_model, 4 * d_model, bias=False),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(4 * d_model, d_model, bias=False),
            )
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
        block: str = "pre_ln",
        freeze_ffn: bool = False,
        eval_rope: rr.RopeConfig | None = None,
    ):
        super().__init__()
        if block not in BLOCKS:
            raise bad("block", block, f"must be one of {BLOCKS}", RopeInputError)
        if d_model % n_heads:
            raise bad("d_model", d_model, f"must be divisible by n_heads={n_heads}", RopeInputError)
        for name, cfg in (("rope", rope), ("eval_rope", eval_rope)):
            if cfg is not None and cfg.head_dim != d_model // n_heads:
                raise bad(
                    f"{name}.head_dim",
                    cfg.head_dim,
                    f"must be d_model // n_heads = {d_model // n_heads}",
                    RopeInputError,
                )
        self.rope, self.block, self.freeze_ffn = rope, block, bool(freeze_ffn)
        self.eval_rope = rope if eval_rope is None else eval_rope
        self.embed = nn.Embedding(vocab, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, rope, dropout, block, eval_rope) for _ in range(n_layers))
        self.ln_f = _norm(block, d_model)
        self.head = nn.Linear(d_model, vocab) if block == "pre_ln" else None
        if block == "t5":
            self._t5_init(d_model, d_model // n_heads)
        if freeze_ffn:
            for blk in self.blocks:
                for p in [*blk.mlp.parameters(), *blk.ln2.parameters()]:
                    p.requires_grad_(False)

    @torch.no_grad()
    def _t5_init(self, d: int, head_dim: int) -> None:
        """T5PreTrainedModel._init_weights (factor 1) for attention and FFN; embedding keeps N(0, 1)."""
        for blk in self.blocks:
            w = blk.attn.qkv.weight  # rows: q, k, v
            w[:d].normal_(0.0, (d * head_dim) ** -0.5)
            w[d:].normal_(0.0, d**-0.5)
            blk.attn.out.weight.normal_(0.0, d**-0.5)  # (n_heads * head_dim)^-1/2 = d^-1/2
            blk.mlp[0].weight.normal_(0.0, d**-0.5)
            blk.mlp[3].weight.normal_(0.0, (4 * d) ** -0.5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(tokens))
        for block in self.blocks:
            x = block(x)
        if self.head is not None:
            return self.head(self.ln_f(x))
        h = self.drop(self.ln_f(x))
        return (h * h.shape[-1] ** -0.5) @ self.embed.weight.T
