"""``RotaryEmbedding``: the rotation as an ``nn.Module`` (q and k at once, GQA, in place)."""

from __future__ import annotations

import torch
from torch import nn

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_cfg

from .fused import IMPLS
from .rotation import apply_rotary_qk

__all__ = ["RotaryEmbedding"]


class RotaryEmbedding(nn.Module):
    """``RotaryEmbedding(cfg)(q, k, positions)`` -> rotated ``(q, k)``.

    q and k may have different head counts (GQA) and be strided views (e.g. slices of a packed
    qkv projection): nothing is made contiguous. ``inplace=True`` writes into q and k. On CUDA
    both are rotated by one fused Triton launch (``impl`` as in ``rrope_torch.apply_rotary``).
    Holds no tables: constants are cached per (config, device) by the backend.
    """

    def __init__(self, cfg: rr.RopeConfig, inplace: bool = False, impl: str | None = None):
        super().__init__()
        if impl is not None and impl not in IMPLS:
            raise bad("impl", impl, f"must be None or one of {IMPLS}", RopeInputError)
        self.cfg = check_cfg(cfg)
        self.inplace = bool(inplace)
        self.impl = impl

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions, seq_len: int | None = None):
        return apply_rotary_qk(q, k, positions, self.cfg, seq_len, inplace=self.inplace, impl=self.impl)

    def extra_repr(self) -> str:
        return f"cfg={self.cfg!r}, inplace={self.inplace}, impl={self.impl!r}"
