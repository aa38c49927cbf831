"""Several PosGen runs trained as one: ``PosGenTransformer`` members stacked on a leading axis.

A PosGen model is far too small to fill a GPU (one run is bound by kernel launches, not FLOPs), so
the runs of one task are trained together: every parameter gets a leading member axis ``E``,
linear layers become batched matmuls (``baddbmm``), and each member's q and k are rotated by its
own ``rrope_torch.RotaryEmbedding``. The members never interact: the training loss is the
sum of the members' losses, so each member's gradient is the gradient of its own loss, and AdamW
is elementwise. Member ``i`` therefore computes exactly what ``models[i]`` computes (up to float
rounding of the batched matmuls; ``tests/backends/test_torch_posgen.py`` checks forward passes and
whole training runs against separately trained models). Dropout masks are drawn for the whole
stack, so with dropout > 0 a run's masks depend on which runs share its stack (recorded in its JSON).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from rrope_core.errors import RopeInputError, bad
from rrope_torch import RotaryEmbedding

from .model import PosGenTransformer, attention_scale

__all__ = ["StackedPosGen"]


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot hold dots


def _hyper(model: PosGenTransformer) -> tuple[int, int, float, str]:
    """What the parameter shapes do not show: ``(layers, heads, dropout, block)``."""
    return len(model.blocks), model.blocks[0].attn.n_heads if len(model.blocks) else 1, model.drop.p, model.block


def _groups(ropes: list, impl: str | None) -> list[tuple[int, int, RotaryEmbedding | None]]:
    """Runs of consecutive members with one position encoding, rotated together: ``(start, end, rotary)``."""
    fingerprints = [None if r is None else r.fingerprint for r in ropes]
    groups = []
    for _, run in itertools.groupby(range(len(ropes)), key=fingerprints.__getitem__):
        idx = list(run)
        rope = ropes[idx[0]]
        groups.append((idx[0], idx[-1] + 1, None if rope is None else RotaryEmbedding(rope, impl=impl)))
    return groups


def _rotate(rotary: RotaryEmbedding | None, q: torch.Tensor, k: torch.Tensor, pos: torch.Tensor):
    return (q, k) if rotary is None else rotary(q, k, pos)


class StackedPosGen(nn.Module):
    """``(E, B, L)`` int tokens -> ``(E, B, L, vocab)`` logits, member ``e`` = ``models[e]``.

    Built from ``models`` (same sizes; position encodings may differ): their parameters are copied,
    so each member starts from its model's initial weights. ``impl``: the rotation's, as in
    ``rrope_torch.apply_rotary`` (``"eager"`` lets ``torch.compile`` fuse it with its neighbours).
    """

    def __init__(self, models: list[PosGenTransformer], impl: str | None = None):
        super().__init__()
        if not models:
            raise bad("models", "[]", "must hold at least one PosGenTransformer", RopeInputError)
        named = [dict(m.named_parameters()) for m in models]
        shapes = {n: p.shape for n, p in named[0].items()}
        for i, m in enumerate(models):
            if {n: p.shape for n, p in named[i].items()} != shapes or _hyper(m) != _hyper(models[0]):
                raise bad(
                    f"models[{i}]",
                    type(m).__name__,
                    "must have the sizes, heads, dropout, block and frozen FFN of models[0]",
                    RopeInputError,
                )
            if [p.requires_grad for p in named[i].values()] != [p.requires_grad for p in named[0].values()]:
                raise bad(f"models[{i}]", type(m).__name__, "must freeze what models[0] freezes", RopeInputError)
        self.n_layers, self.n_heads, self.dropout, self.block = _hyper(models[0])
        self.vocab, self.d_model = models[0].embed.weight.shape
        self.params = nn.ParameterDict(
            {
                _key(n): nn.Parameter(torch.stack([params[n].detach() for params in named]), p.requires_grad)
                for n, p in named[0].items()
            }
        )
        self.impl = impl
        self.groups = _groups([m.rope for m in models], impl)
        self.eval_groups = _groups([m.eval_rope for m in models], impl)
        self.register_buffer("vocab_offset", torch.arange(len(models)) * self.vocab, persistent=False)

    def set_eval_ropes(self, ropes: list) -> None:
        """Member ``e`` is evaluated with ``ropes[e]`` from now on (its training encoding is unchanged)."""
        if len(ropes) != self.n_members:
            raise bad(
                "ropes", f"<{len(ropes)} configs>", f"must hold one per member ({self.n_members})", RopeInputError
            )
        self.eval_groups = _groups(list(ropes), self.impl)

    @property
    def n_members(self) -> int:
        return len(self.vocab_offset)

    def member_state_dict(self, e: int) -> dict[str, torch.Tensor]:
        """Member ``e``'s weights as a ``PosGenTransformer`` ``state_dict`` (copies)."""
        return {k.replace("__", "."): p[e].detach().clone() for k, p in self.params.items()}

    def _p(self, name: str) -> torch.Tensor:
        return self.params[_key(name)]

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """``x @ W_e^T + b_e`` per member; ``W`` is ``(E, out, in)`` as in ``nn.Linear``."""
        w = self._p(name + ".weight")
        e, *mid, d_in = x.shape
        if _key(name + ".bias") in self.params:
            y = torch.baddbmm(self._p(name + ".bias")[:, None, :], x.reshape(e, -1, d_in), w.transpose(1, 2))
        else:
            y = torch.bmm(x.reshape(e, -1, d_in), w.transpose(1, 2))
        return y.view(e, *mid, w.shape[1])

    def _layer_norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """LayerNorm (``pre_ln``) or RMSNorm with eps 1e-6 (``t5``), each member with its own weights."""
        w = self._p(name + ".weight")[:, None, None, :]
        if self.block == "t5":
            return F.rms_norm(x, x.shape[-1:], eps=1e-6) * w
        return F.layer_norm(x, x.shape[-1:]) * w + self._p(name + ".bias")[:, None, None, :]

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, self.training)

    def _attention(self, x: torch.Tensor, i: int) -> torch.Tensor:
        e, b, length, d = x.shape
        qkv = self._linear(x, f"blocks.{i}.attn.qkv").view(e * b, length, 3, self.n_heads, d // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        pos = torch.arange(length, device=x.device)
        # Per group of members: split/cat, so backward copies once each way (slices would zero-fill per group).
        groups = self.groups if self.training else self.eval_groups
        sizes = [(end - start) * b for start, end, _ in groups]
        rotated = [
            _rotate(rot, qg, kg, pos) for (*_, rot), qg, kg in zip(groups, q.split(sizes), k.split(sizes), strict=True)
        ]
        if len(rotated) > 1:
            q, k = torch.cat([qk[0] for qk in rotated]), torch.cat([qk[1] for qk in rotated])
        else:
            q, k = rotated[0]
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            is_causal=True,
            dropout_p=self.dropout if self.training else 0.0,
            scale=attention_scale(self.block, d // self.n_heads),
        )
        return self._linear(y.transpose(1, 2).reshape(e, b, length, d), f"blocks.{i}.attn.out")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[0] != self.n_members:
            raise bad("tokens.shape", tuple(tokens.shape), f"must be (E={self.n_members}, B, L)", RopeInputError)
        table = self._p("embed.weight").flatten(0, 1)  # (E*vocab, d): member e's rows start at e*vocab
        x = self._drop(F.embedding(tokens + self.vocab_offset[:, None, None], table))
        t5 = self.block == "t5"
        for i in range(self.n_layers):
            x = x + self._drop(self._attention(self._layer_norm(x, f"blocks.{i}.ln1"), i))
            h = self._linear(self._layer_norm(x, f"blocks.{i}.ln2"), f"blocks.{i}.mlp.0")
            h = self._drop(F.relu(h)) if t5 else F.gelu(h)
            x = x + self._drop(self._linear(h, f"blocks.{i}.mlp.{3 if t5 else 2}"))
        if not t5:
            return self._linear(self._layer_norm(x, "ln_f"), "head")
        h = self._drop(self._layer_norm(x, "ln_f")) * self.d_model**-0.5
        return torch.matmul(h, self._p("embed.weight").transpose(1, 2)[:, None])  # tied, T5's rescale
