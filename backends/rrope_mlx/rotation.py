"""cos/sin, the rotation, its inverse and its gradient on MLX arrays (formulas: rrope_core.rotation).

``y1 = a*(x1*cos(phi) - x2*sin(phi))``, ``y2 = a*(x2*cos(phi) + x1*sin(phi))`` (RoFormer eq. 13),
inverse with ``-phi`` and ``1/a``. Phases from ``rrope_mlx.phases`` (exact reduction) or, where
``rrope_mlx.fast``'s gate allows, from ``mx.fast.rope``. Computed in float32 (float64 for
float64 ``x``), returned in ``x``'s dtype; features past ``rotary_dim`` are copied bit for bit.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

import rrope_core as rr
from rrope_core.checked import check_range, positions_checked
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_call, check_cfg, check_positions_dtype
from rrope_core.rotation import resolve_seq_len

from . import fast
from .convert import DTYPES, _check_device, meta
from .phases import constants
from .phases import cos_sin as _cos_sin

__all__ = ["inv_freq", "cos_sin", "apply_rotary", "inverse_rotary", "grad_apply_rotary", "checked"]


def inv_freq(cfg: rr.RopeConfig, seq_len: int | None = None, *, device=None) -> mx.array:
    """``rrope_core.inv_freq`` as a float32 MLX array."""
    check_cfg(cfg)
    _check_device(device)
    return mx.array(rr.inv_freq(cfg, seq_len).astype(np.float32))


def _as_positions(positions) -> mx.array:
    return positions if isinstance(positions, mx.array) else mx.array(np.asarray(positions))


def checked(x, positions, cfg: rr.RopeConfig, name: str) -> tuple[mx.array, mx.array]:
    """The reference's metadata checks (rrope_core.inputs.check_call), then MLX arrays."""
    xs, xd, xf, _ = meta(x)
    ps, pd, _, pi = meta(positions)
    check_call(cfg, xs, xd, xf, ps, pd, pi, name)
    if xd == "float64" and "float64" not in DTYPES:
        raise bad(
            f"{name}.dtype",
            xd,
            f"is not supported by MLX on {mx.default_device()}; use one of {DTYPES}",
            RopeInputError,
        )
    positions = _as_positions(positions)
    if positions_checked():
        check_values(positions)
    return (x if isinstance(x, mx.array) else mx.array(np.asarray(x))), positions


def check_values(positions: mx.array) -> None:
    """Checked positions mode (``rrope_core.checked``): read min/max (one evaluation) and validate."""
    if positions.size:
        check_range(int(mx.min(positions).item()), int(mx.max(positions).item()))


def cos_sin(cfg: rr.RopeConfig, positions, seq_len: int | None = None) -> tuple[mx.array, mx.array]:
    """``(cos, sin)`` of the exact phases, float32, shape ``positions.shape + (rotary_dim//2,)``."""
    check_cfg(cfg)
    _, pd, _, pi = meta(positions)
    check_positions_dtype(pd, pi)
    positions = _as_positions(positions)
    if positions_checked():
        check_values(positions)
    max_pos = None
    if cfg.seq_len_dependent and seq_len is None and positions.size:
        max_pos = int(mx.max(positions).item())
    return _cos_sin(positions, constants(cfg, resolve_seq_len(cfg, seq_len, max_pos)), mx.float32)


def _exact(x: mx.array, positions: mx.array, cfg: rr.RopeConfig, seq_len, inverse: bool) -> mx.array:
    k = constants(cfg, seq_len)
    c = mx.float64 if x.dtype == mx.float64 else mx.float32
    cos, sin = _cos_sin(positions, k, c)
    scale = k.attention
    if inverse:
        sin, scale = -sin, 1.0 / scale
    rd = cfg.rotary_dim
    xr = x[..., :rd].astype(c)
    first, second = rr.pair_slices(cfg)
    x1, x2 = xr[..., first], xr[..., second]
    y1, y2 = x1 * cos - x2 * sin, x2 * cos + x1 * sin
    if scale != 1.0:
        y1, y2 = y1 * scale, y2 * scale
    if cfg.layout == "half":
        rot = mx.concatenate([y1, y2], axis=-1)
    else:
        rot = mx.stack([y1, y2], axis=-1).reshape(*x.shape[:-1], rd)
    rot = rot.astype(x.dtype)
    return rot if rd == cfg.head_dim else mx.concatenate([rot, x[..., rd:]], axis=-1)


def _run(x, positions, cfg, seq_len, path: str, inverse: bool) -> mx.array:
    x, positions = checked(x, positions, cfg, "y" if inverse else "x")
    p = fast.plan(x, positions, cfg, seq_len, path)
    if p.path == "fast":
        return fast.rotate(x, cfg, p, inverse)
    return _exact(x, positions, cfg, p.seq_len, inverse)


def apply_rotary(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None, *, path: str = "auto") -> mx.array:
    """Rotate ``x`` (``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``.

    ``path="auto"`` uses ``mx.fast.rope`` when ``rrope_mlx.path_for`` says ``"fast"``, else the
    exact phases; ``"fast"``/``"exact"`` force one (``"fast"`` skips the accuracy gate). Deciding
    reads ``positions`` once (a sync; cheap on unified memory), as does ``seq_len=None`` for dynamic
    NTK / LongRoPE; ``path="exact"`` with a fixed ``seq_len`` never reads values (``mx.compile``-safe).
    """
    return _run(x, positions, cfg, seq_len, path, inverse=False)


def inverse_rotary(y, positions, cfg: rr.RopeConfig, seq_len: int | None = None, *, path: str = "auto") -> mx.array:
    """The inverse of ``apply_rotary``: rotate by ``-phi`` and divide by the attention factor."""
    return _run(y, positions, cfg, seq_len, path, inverse=True)


def grad_apply_rotary(x, positions, cfg: rr.RopeConfig, w, seq_len: int | None = None, *, path: str = "auto"):
    """``d/dx sum(w * apply_rotary(x))`` by ``mx.grad``; equals ``a**2 * inverse_rotary(w)`` (the transpose)."""
    x, positions = checked(x, positions, cfg, "x")
    w = w if isinstance(w, mx.array) else mx.array(np.asarray(w))
    if tuple(w.shape) != tuple(x.shape):
        raise bad("w.shape", tuple(w.shape), f"must equal x.shape={tuple(x.shape)}", RopeInputError)
    c = mx.float64 if x.dtype == mx.float64 else mx.float32
    wc = w.astype(c)

    def loss(x_):
        return (apply_rotary(x_, positions, cfg, seq_len, path=path).astype(c) * wc).sum()

    return mx.grad(loss)(x)
