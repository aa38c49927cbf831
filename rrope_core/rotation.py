"""cos/sin, the rotation and its inverse: the reference every backend is checked against.

For pair ``i`` with features ``(x1, x2)`` (laid out by ``cfg.layout``), angle ``phi = m*theta_i``
and attention factor ``a`` (transformers multiplies cos and sin by it):

    y1 = a * (x1*cos(phi) - x2*sin(phi)),   y2 = a * (x2*cos(phi) + x1*sin(phi))   (RoFormer eq. 13)

and the inverse ``x1 = (y1*cos + y2*sin)/a``, ``x2 = (y2*cos - y1*sin)/a``.
Features past ``rotary_dim`` pass through unchanged. Computed in float64, returned in x's dtype,
in blocks of ``limits.BLOCK_ELEMENTS`` elements: a call holds its output, cos and sin, and 8 MiB blocks.
"""

from __future__ import annotations

import math

import numpy as np

from .config import RopeConfig, check_seq_len
from .frequencies import attention_factor
from .inputs import as_positions, check_call
from .limits import BLOCK_ELEMENTS, FLOAT64_BYTES, check_fits
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
    shape = np.shape(positions)
    check_fits(
        "positions.shape", shape, 2 * _table_bytes(shape, cfg), "cos and sin (float64, positions.shape + (n_pairs,))"
    )
    pos = as_positions(positions, cfg)
    return _cos_sin(phases(cfg, pos, resolve_seq_len(cfg, seq_len, _max_or_none(pos))))


def _table_bytes(pos_shape: tuple, cfg: RopeConfig) -> int:
    """Bytes of one float64 table of shape ``pos_shape + (n_pairs,)``."""
    return math.prod(pos_shape) * cfg.n_pairs * FLOAT64_BYTES


def _cos_sin(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cos(phi), sin(phi)``, the sine written over ``phi`` (two tables held, not three)."""
    cos = np.cos(phi)
    return cos, np.sin(phi, out=phi)


def _prepare(x, positions, cfg: RopeConfig, seq_len, name: str):
    x, p = np.asarray(x), np.asarray(positions)
    check_call(cfg, x.shape, str(x.dtype), x.dtype.kind == "f", p.shape, str(p.dtype), p.dtype.kind in "iu", name)
    held = 2 * _table_bytes(p.shape, cfg) + x.size * x.itemsize
    check_fits(f"{name}.shape", x.shape, held, f"the rotated copy of {name} with its float64 cos and sin")
    pos = as_positions(p, cfg)
    seq_len = resolve_seq_len(cfg, seq_len, _max_or_none(pos))
    cos, sin = _cos_sin(phases(cfg, pos, seq_len))
    return x, cos, sin, attention_factor(cfg, seq_len)


def _blocks(lead: tuple, row: int, budget: int = BLOCK_ELEMENTS):
    """Indices over the leading axes ``lead`` that cover them in blocks of at most ``budget``
    elements (rows of ``row`` elements; a single row may be larger)."""
    k, inner = len(lead), row
    while k > 0 and inner * lead[k - 1] <= budget:
        k -= 1
        inner *= lead[k]
    if k == 0:
        yield ()
        return
    step = max(1, budget // inner)
    for outer in np.ndindex(*lead[: k - 1]):
        for first in range(0, lead[k - 1], step):
            yield (*outer, slice(first, first + step))


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, scale: float, cfg: RopeConfig) -> np.ndarray:
    """The rotation in float64, block by block (``_blocks``), written into a new array of x's dtype."""
    first, second = pair_slices(cfg)
    lead, n = x.shape[:-1], cfg.n_pairs
    cos, sin = np.broadcast_to(cos, lead + (n,)), np.broadcast_to(sin, lead + (n,))
    out = np.empty_like(x)
    out[..., cfg.rotary_dim :] = x[..., cfg.rotary_dim :]
    for idx in _blocks(lead, x.shape[-1]):
        xb, c, s = x[idx].astype(np.float64), cos[idx], sin[idx]
        x1, x2 = xb[..., first], xb[..., second]
        out[(*idx, Ellipsis, first)] = scale * (x1 * c - x2 * s)
        out[(*idx, Ellipsis, second)] = scale * (x2 * c + x1 * s)
    return out


def apply_rotary(x, positions, cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """Rotate ``x`` (shape ``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``.

    Returns a new array of ``x``'s dtype; ``x`` is never modified.
    """
    x, cos, sin, a = _prepare(x, positions, cfg, seq_len, "x")
    return _rotate(x, cos, sin, a, cfg)


def inverse_rotary(y, positions, cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """The exact inverse of ``apply_rotary``: rotate by ``-phi`` and divide by the attention factor."""
    y, cos, sin, a = _prepare(y, positions, cfg, seq_len, "y")
    return _rotate(y, cos, np.negative(sin, out=sin), 1.0 / a, cfg)
