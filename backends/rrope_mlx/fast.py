"""The ``mx.fast.rope`` path, and the gate that decides when its float32 phase is good enough.

What ``mx.fast.rope(a, dims, traditional=, base=None, scale=1.0, offset=, freqs=)`` computes
(checked by experiment against the exact path, tests/backends/test_mlx.py): it rotates along
axis -2 of ``a`` (at least 3-D) at positions ``offset + arange(T)``; ``offset`` is an int or an
integer array of ``a.shape[0]`` per-batch offsets (MLX casts it to int32); ``freqs`` are
*periods over 2*pi*, ``freqs_i = 1/theta_i`` (the kernel uses ``1/freqs_i``); ``traditional=True``
is the interleaved layout, ``False`` the half layout over the first ``dims`` features; negative
``freqs`` rotate backwards (our inverse). The angle is ``fl32(float(m) * fl32(1/fl32(1/theta)))``:
three float32 roundings, so the phase error is ``<= FAST_PHASE_ERR_EPS32 * eps32 * m*theta``
(positions exact below ``FAST_MAX_POSITION``; measured 1.2 on the CPU).

Gate (``accurate_enough``). conformance/tolerance.py allows each output feature
``a*s*(delta + 8*eps32 + eps_d) + eps_d*|y|`` (``s = |x1| + |x2|``). The exact path's error fits
``delta`` and ``8*eps32``; the fast path's extra phase error ``e`` moves the output by ``<= a*s*e``,
which must fit in the ``a*s*eps_d`` term. We require ``max_position * max(theta) * eps32 <=
eps_d * FAST_PHASE_SHARE`` (1/4), so ``e <= 3/8 eps_d``; the output is rounded to ``d`` once (the
``eps_d*|y|`` term). For float32 ``x`` this admits only ``m*theta <= 1/4`` (position 0 in practice);
for bfloat16 ``m*theta <= 2**14``, for float16 ``<= 2**11``. On the CPU, MLX's fallback for
``mx.fast.rope`` rounds cos/sin and every product to ``x``'s dtype (it would use up all of the
``eps_d`` slack), so there we rotate a float32 copy and round the result once.

On the GPU the Metal kernel uses ``metal::fast::cos/sin``: see ``METAL_FAST_TRIG_ABS_ERR``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad
from rrope_core.rotation import resolve_seq_len

from .convert import dtype_name, on_gpu
from .phases import constants

__all__ = [
    "PATHS",
    "EPS",
    "FAST_PHASE_ERR_EPS32",
    "FAST_PHASE_SHARE",
    "FAST_MAX_POSITION",
    "METAL_FAST_TRIG_ABS_ERR",
    "METAL_FAST_TRIG_DOMAIN",
    "METAL_TRIG_SHARE",
    "Plan",
    "plan",
    "path_for",
    "accurate_enough",
    "rotate",
]

PATHS = ("auto", "fast", "exact")
EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
#: Phase error of mx.fast.rope in units of ``eps32 * m * theta``: three float32 roundings
#: (``fl32(1/theta)`` on the host, ``1/freqs`` and ``m * inv_freq`` in the kernel), each <= eps32/2.
FAST_PHASE_ERR_EPS32 = 1.5
#: Share of ``eps_d`` that ``max_position * max(theta) * eps32`` may use (the brief's ``eps_d/4``).
FAST_PHASE_SHARE = 0.25
#: Positions are exact in float32 below 2**24 (and MLX passes offsets as int32).
FAST_MAX_POSITION = 2**24
#: Metal Shading Language Specification, table "accuracy of single-precision functions in fast
#: math mode": ``cos(x)``/``sin(x)``: "for x in the domain [-pi, pi], the maximum absolute error
#: is <= 2**-13 and larger otherwise". The kernel calls ``metal::fast::cos/sin`` on the unreduced
#: ``m*theta``, so the bound holds only while ``max_position * max(theta) <= pi``. NOT verified on
#: Linux (no Metal here): tests/backends/test_mlx.py measures it on a Mac's GPU.
METAL_FAST_TRIG_ABS_ERR = 2.0**-13
METAL_FAST_TRIG_DOMAIN = math.pi
#: Share of ``eps_d`` the fast trig may use (cos and sin errors move a feature by ``<= s*err``).
METAL_TRIG_SHARE = 0.125


@dataclass(frozen=True)
class Plan:
    """What one call does: ``path``, the resolved ``seq_len``, and the offsets for mx.fast.rope."""

    path: str
    seq_len: int | None
    offsets: int | np.ndarray | None = None


def accurate_enough(dtype: str, max_position: int, theta_max: float, gpu: bool) -> bool:
    """The gate of the module docstring: True when mx.fast.rope meets the conformance tolerance."""
    if dtype not in EPS or not 0 <= max_position < FAST_MAX_POSITION:
        return False
    eps_d = EPS[dtype]
    reach = max_position * theta_max
    if reach * EPS["float32"] > eps_d * FAST_PHASE_SHARE:
        return False
    if gpu and (METAL_FAST_TRIG_ABS_ERR > eps_d * METAL_TRIG_SHARE or reach > METAL_FAST_TRIG_DOMAIN):
        return False
    return True


def _layout(x_shape: tuple, pos_shape: tuple) -> str | None:
    """``"shared"`` (one offset), ``"batch"`` (one per ``x.shape[0]``) or None (not an arange along axis -2)."""
    lead = x_shape[:-1]
    if len(lead) == 0 or len(pos_shape) > len(lead) or 0 in x_shape:
        return None
    p = (1,) * (len(lead) - len(pos_shape)) + tuple(pos_shape)
    if p[-1] != lead[-1] or any(v != 1 for v in p[1:-1]):
        return None
    if len(lead) == 1 or p[0] == 1:
        return "shared"
    return "batch" if len(x_shape) >= 3 else None


def _offsets(pos: np.ndarray, layout: str, t: int):
    rows = pos.reshape(-1, t)
    off = rows[:, :1]
    if not np.array_equal(rows, off + np.arange(t, dtype=rows.dtype)):
        return None
    return int(off[0, 0]) if layout == "shared" else off[:, 0].astype(np.int64)


def _may_pass(dtype: str, t: int, cfg: rr.RopeConfig, gpu: bool) -> bool:
    """Could any arange of length ``t`` pass the gate? (Avoids reading positions when it cannot.)"""
    theta_max = constants(cfg, None).theta_max if not cfg.seq_len_dependent else 0.0
    return accurate_enough(dtype, t - 1, theta_max, gpu)


def plan(x: mx.array, positions: mx.array, cfg: rr.RopeConfig, seq_len, path: str) -> Plan:
    """Pick the path of one (already checked) call; reads the positions at most once, only when needed.

    MLX is lazy: reading values evaluates ``positions`` (cheap on unified memory, but a sync).
    They are read when ``seq_len`` must be ``max(positions) + 1`` or when the fast path is possible.
    """
    if path not in PATHS:
        raise bad("path", path, f"must be one of {PATHS}", RopeInputError)
    layout = None if path == "exact" else _layout(tuple(x.shape), tuple(positions.shape))
    dtype = dtype_name(x.dtype)
    t = x.shape[-2] if x.ndim >= 2 else 1
    gpu = on_gpu()
    want_fast = layout is not None and (path == "fast" or _may_pass(dtype, t, cfg, gpu))
    pos = None
    if want_fast or (cfg.seq_len_dependent and seq_len is None):
        pos = np.asarray(positions)
    max_pos = int(pos.max()) if pos is not None and pos.size else None
    seq_len = resolve_seq_len(cfg, seq_len, max_pos)
    offsets = _offsets(pos, layout, t) if want_fast else None
    if offsets is not None and (int(np.min(offsets)) < 0 or max_pos >= FAST_MAX_POSITION):
        offsets = None
    if path == "fast":
        if offsets is None:
            raise bad(
                "path",
                "fast",
                "needs positions offset + arange(T) along x's axis -2 (shape (T,), or (B,1,T) for (B,H,T,D)), "
                f"offsets >= 0 and max position < {FAST_MAX_POSITION}; use path='auto' or 'exact'",
                RopeInputError,
            )
        return Plan("fast", seq_len, offsets)
    if offsets is not None and accurate_enough(dtype, max_pos, constants(cfg, seq_len).theta_max, gpu):
        return Plan("fast", seq_len, offsets)
    return Plan("exact", seq_len)


def path_for(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> str:
    """``"fast"`` or ``"exact"``: the path ``apply_rotary(x, positions, cfg, seq_len)`` takes."""
    from .rotation import checked

    x, positions = checked(x, positions, cfg, "x")
    return plan(x, positions, cfg, seq_len, "auto").path


def rotate(x: mx.array, cfg: rr.RopeConfig, p: Plan, inverse: bool) -> mx.array:
    """``a * R(phi) x`` (or ``R(-phi) x / a``) with mx.fast.rope; features past rotary_dim copied."""
    k = constants(cfg, p.seq_len)
    rd = cfg.rotary_dim
    freqs = mx.array(((-1.0 if inverse else 1.0) / k.theta).astype(np.float32))
    scale = 1.0 / k.attention if inverse else k.attention
    direct = on_gpu() and scale == 1.0  # the Metal kernel computes in float32 and rounds once
    c = mx.float64 if x.dtype == mx.float64 else mx.float32
    xin = x if direct else x.astype(c)
    if x.ndim == 2:
        xin = xin[None]
    offset = p.offsets if isinstance(p.offsets, int) else mx.array(p.offsets.astype(np.int32))
    y = mx.fast.rope(xin, rd, traditional=cfg.layout == "interleaved", base=None, scale=1.0, offset=offset, freqs=freqs)
    if x.ndim == 2:
        y = y[0]
    y = y[..., :rd]
    if scale != 1.0:
        y = y * scale
    y = y.astype(x.dtype)
    return y if rd == cfg.head_dim else mx.concatenate([y, x[..., rd:]], axis=-1)
