"""cos/sin, the rotation and its inverse: the reference every backend is checked against.

For pair ``i`` with features ``(x1, x2)`` (laid out by ``cfg.layout``), angle ``phi = m*theta_i``
and attention factor ``a`` (transformers multiplies cos and sin by it):

    y1 = a * (x1*cos(phi) - x2*sin(phi)),   y2 = a * (x2*cos(phi) + x1*sin(phi))   (RoFormer eq. 13)

and the inverse ``x1 = (y1*cos + y2*sin)/a``, ``x2 = (y2*cos - y1*sin)/a``.
Features past ``rotary_dim`` pass through unchanged. Computed in float64, returned in x's dtype.
"""

from __future__ import annotations

import numpy as np

from .config import RopeConfig, check_seq_len
from .frequencies import attention_factor
from .inputs import as_positions, check_call
from .phases import phases

__all__ = ["cos_sin", "apply_rotary", "inverse_rotary", "pair_slices", "resolve_seq_len"]


def pair_slices(cfg: RopeConfig) -> tuple[slice, slice]:
    """Index of the first and second feature of every pair along the last axis."""
    rd = cfg.rotary_dim
    if cfg.layout == "half":
        return slice(0, rd // 2), slice(rd // 2, rd)
    return slice(0, rd, 2), slice(1, rd, 2)


def resolve_seq_len(cfg: RopeConfig, seq_len: int | None, max_position: int | None) -> int | None:
    """The ``seq_len`` a call uses: the one given, else for dynamic NTK / LongRoPE
    ``max(positions) + 1`` (as transformers' ``dynamic_rope_update`` does), else None."""
    seq_len = check_seq_len(seq_len)
    if seq_len is None and cfg.seq_len_dependent and max_position is not None:
        return max_position + 1
    return seq_len


def _max_or_none(pos: np.ndarray) -> int | None:
    return int(pos.max()) if pos.size else None


def cos_sin(cfg: RopeConfig, positions, seq_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, sin)`` of shape ``positions.shape + (rotary_dim//2,)``, float64, without the attention factor."""
    pos = as_positions(positions, cfg)
    phi = phases(cfg, pos, resolve_seq_len(cfg, seq_len, _max_or_none(pos)))
    return np.cos(phi), np.sin(phi)


def _prepare(x, positions, cfg: RopeConfig, seq_len, name: str):
    x, p = np.asarray(x), np.asarray(positions)
    check_call(cfg, x.shape, str(x.dtype), x.dtype.kind == "f", p.shape, str(p.dtype), p.dtype.kind in "iu", name)
    pos = as_positions(p, cfg)
    seq_len = resolve_seq_len(cfg, seq_len, _max_or_none(pos))
    phi = phases(cfg, pos, seq_len)
    return x, np.cos(phi), np.sin(phi), attention_factor(cfg, seq_len)


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, scale: float, cfg: RopeConfig) -> np.ndarray:
    out = x.astype(np.float64, copy=True)
    first, second = pair_slices(cfg)
    x1, x2 = out[..., first].copy(), out[..., second].copy()
    out[..., first] = scale * (x1 * cos - x2 * sin)
    out[..., second] = scale * (x2 * cos + x1 * sin)
    return out.astype(x.dtype, copy=False)


def apply_rotary(x, positions, cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """Rotate ``x`` (shape ``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``.

    Returns a new array of ``x``'s dtype; ``x`` is never modified.
    """
    x, cos, sin, a = _prepare(x, positions, cfg, seq_len, "x")
    return _rotate(x, cos, sin, a, cfg)


def inverse_rotary(y, positions, cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """The exact inverse of ``apply_rotary``: rotate by ``-phi`` and divide by the attention factor."""
    y, cos, sin, a = _prepare(y, positions, cfg, seq_len, "y")
    return _rotate(y, cos, -sin, 1.0 / a, cfg)
