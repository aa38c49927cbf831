"""One Triton launch that rotates q and k (any head counts, any strides) with exact phases.

Grid ``(token blocks, batch, head groups of q then of k)``. A program computes cos/sin for its
``BLOCK_S`` tokens once and reuses them for ``HG`` heads of one tensor (branch-free loop, so loads
of the next head overlap the stores of this one). Phases (same as rrope_core): integer wavelengths
-> ``r = m mod L`` in int64, centred, ``r * (2*pi/L)`` in float32; otherwise
``fmod(m*theta, 2*pi)`` in float64, centred, then float32. Trig is libdevice's accurate
``cosf``/``sinf``; math in float32; I/O in the tensors' dtype. The inverse rotation and the
backward are the same kernel with ``SIN_SIGN = -1``. No cos/sin table is stored.
"""

from __future__ import annotations

import functools
import math
import os
import warnings

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = ["rope_launch", "launch_params"]

# Triton's CPU interpreter (TRITON_INTERPRET=1, used by the CPU tests) has no libdevice: there the
# kernel uses tl.cos/tl.sin and a floor-based fmod. On GPUs it always uses libdevice.
_LIBDEVICE = os.environ.get("TRITON_INTERPRET", "0") != "1"
_TWO_PI = tl.constexpr(6.283185307179586)
_PI = tl.constexpr(3.141592653589793)
_EXACT_F64 = tl.constexpr(4503599627370496)  # 2**52: integers below are exact in float64 with room


@triton.jit
def _rotate_heads(
    src, dst, s_h, s_tok, d_h, d_tok, head0, H, tok, tmask, cos, sin, scale,
    P: tl.constexpr, BLOCK_P: tl.constexpr, HALF: tl.constexpr, PASS: tl.constexpr,
    D: tl.constexpr, BLOCK_PASS: tl.constexpr, HG: tl.constexpr,
):  # fmt: skip
    i = tl.arange(0, BLOCK_P)
    if HALF:
        o1, o2 = i, i + P
    else:
        o1, o2 = 2 * i, 2 * i + 1
    tok64 = tok[:, None].to(tl.int64)
    for hh in tl.range(0, HG):
        h = (head0 + hh).to(tl.int64)
        rows = tmask & ((tl.zeros_like(tok) + head0 + hh) < H)  # this head exists
        m2 = rows[:, None] & (i < P)[None, :]
        row_s = src + h * s_h + tok64 * s_tok
        row_d = dst + h * d_h + tok64 * d_tok
        x1 = tl.load(row_s + o1[None, :], mask=m2, other=0.0).to(tl.float32)
        x2 = tl.load(row_s + o2[None, :], mask=m2, other=0.0).to(tl.float32)
        y1 = (x1 * cos - x2 * sin) * scale
        y2 = (x2 * cos + x1 * sin) * scale
        tl.store(row_d + o1[None, :], y1.to(dst.dtype.element_ty), mask=m2)
        tl.store(row_d + o2[None, :], y2.to(dst.dtype.element_ty), mask=m2)
        if PASS:  # out of place with rotary_dim < head_dim: copy the pass-through features
            j = 2 * P + tl.arange(0, BLOCK_PASS)
            mp = rows[:, None] & (j < D)[None, :]
            tl.store(row_d + j[None, :], tl.load(row_s + j[None, :], mask=mp), mask=mp)


@triton.jit
def _rope_kernel(
    Q, K, QO, KO, POS, FREQ, STEP,
    S, HQ, HK, GQ,
    q_sb, q_sh, q_ss, k_sb, k_sh, k_ss,
    qo_sb, qo_sh, qo_ss, ko_sb, ko_sh, ko_ss,
    p_sb, p_ss,
    scale, sin_sign,
    P: tl.constexpr, BLOCK_P: tl.constexpr, HALF: tl.constexpr, RESONANCE: tl.constexpr,
    PASS: tl.constexpr, D: tl.constexpr, BLOCK_PASS: tl.constexpr,
    BLOCK_S: tl.constexpr, HG: tl.constexpr, LIBDEVICE: tl.constexpr,
):  # fmt: skip
    pid_s = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    g = tl.program_id(2)
    tok = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    tmask = tok < S
    i = tl.arange(0, BLOCK_P)
    pmask = i < P
    pos = tl.load(POS + b * p_sb + tok.to(tl.int64) * p_ss, mask=tmask, other=0).to(tl.int64)
    if RESONANCE:
        period = tl.load(FREQ + i, mask=pmask, other=1)[None, :]
        if tl.max(tl.abs(pos)) < _EXACT_F64:
            # m mod L in float64: q = floor(m/L) may be off by one, fixed below; m - q*L is exact.
            pf = pos[:, None].to(tl.float64)
            lf = period.to(tl.float64)
            r = pf - tl.floor(pf * (1.0 / lf)) * lf
            r = tl.where(r < 0, r + lf, r)
            r = tl.where(r >= lf, r - lf, r)
            r = tl.where(2 * r > lf, r - lf, r).to(tl.float32)
        else:  # int64 remainder (slow on GPUs, exact at any position)
            ri = pos[:, None] % period
            ri = tl.where(ri > period // 2, ri - period, ri)
            r = tl.where(2 * ri < -period, ri + period, ri).to(tl.float32)
        ang = r * tl.load(STEP + i, mask=pmask, other=0.0)[None, :]
    else:
        theta = tl.load(FREQ + i, mask=pmask, other=0.0)
        a64 = pos[:, None].to(tl.float64) * theta[None, :]
        two_pi = tl.zeros_like(a64) + _TWO_PI
        if LIBDEVICE:
            a64 = libdevice.fmod(a64, two_pi)  # exact
        else:
            a64 = a64 - tl.floor(a64 / two_pi) * two_pi
        a64 = tl.where(a64 > _PI, a64 - two_pi, a64)
        a64 = tl.where(a64 < -_PI, a64 + two_pi, a64)
        ang = a64.to(tl.float32)
    if LIBDEVICE:
        cos = libdevice.cos(ang)
        sin = libdevice.sin(ang) * sin_sign
    else:
        cos = tl.cos(ang)
        sin = tl.sin(ang) * sin_sign
    if g < GQ:
        _rotate_heads(
            Q + b * q_sb,
            QO + b * qo_sb,
            q_sh,
            q_ss,
            qo_sh,
            qo_ss,
            g * HG,
            HQ,
            tok,
            tmask,
            cos,
            sin,
            scale,
            P,
            BLOCK_P,
            HALF,
            PASS,
            D,
            BLOCK_PASS,
            HG,
        )
    else:
        _rotate_heads(
            K + b * k_sb,
            KO + b * ko_sb,
            k_sh,
            k_ss,
            ko_sh,
            ko_ss,
            (g - GQ) * HG,
            HK,
            tok,
            tmask,
            cos,
            sin,
            scale,
            P,
            BLOCK_P,
            HALF,
            PASS,
            D,
            BLOCK_PASS,
            HG,
        )


#: Launch-parameter overrides for sweeps (bench/rope_kernels.py --sweep): BLOCK_S, TARGET, WARPS.
OVERRIDES: dict[str, int] = {}


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


@functools.lru_cache(maxsize=4096)
def _launch_params(s: int, b: int, hq: int, hk: int, p: int, block_s: int, target: int, warps: int | None):
    block_s = min(block_s, _pow2(s))
    n_s = -(-s // block_s)
    heads = hq + hk
    groups = max(1, min(heads, math.ceil(target / (n_s * b))))
    hg = -(-heads // groups)
    tile = block_s * _pow2(p)
    if warps is None:
        warps = 8 if tile >= 2048 else 4 if tile >= 512 else 2
    return block_s, hg, warps


def launch_params(s: int, b: int, hq: int, hk: int, p: int) -> tuple[int, int, int]:
    """``(BLOCK_S, HG, num_warps)``: tiles of up to 16 tokens, about ``TARGET`` programs in all.

    Defaults from the sweep on an H200 (docs/benchmarks.md): BLOCK_S=16, TARGET=2112 (16 per SM).
    Pure Python and cached: this runs on every call, and host time bounds small shapes.
    """
    o = OVERRIDES
    params = _launch_params.__wrapped__ if torch.compiler.is_compiling() else _launch_params  # Dynamo warns on caches
    return params(s, b, hq, hk, p, o.get("BLOCK_S", 16), o.get("TARGET", 2112), o.get("WARPS"))


#: Compiled kernels by everything Triton specializes on (argument dtypes, pointer alignment, integer
#: values, constexprs, device), so repeated calls skip Triton's Python launcher (argument binding and
#: cache-key building: tens of microseconds, more than the GPU time of a small call). Cleared when
#: it grows past 4096 entries. ``DIRECT_LAUNCH = False`` always goes through ``_rope_kernel[grid]``.
_COMPILED: dict = {}
DIRECT_LAUNCH = not (os.environ.get("TRITON_INTERPRET", "0") == "1")


def rope_launch(q, k, q_out, k_out, pos, freq, step, *, rotary_dim: int, half: bool, resonance: bool,
                scale: float, sin_sign: float, token_axis: int, pos_strides=None):  # fmt: skip
    """Launch on 4-D ``q``/``k`` (``k`` may be None) whose last stride is 1.

    ``token_axis`` is 1 (``(B,S,H,D)``) or 2 (``(B,H,S,D)``); the other middle axis is heads.
    ``pos`` is ``(B, S)`` with any strides (stride 0 where shared), or any tensor read with
    ``pos_strides = (batch stride, token stride)``. ``freq`` holds the int64 periods (resonance) or
    float64 ``theta``; ``step`` the float32 ``2*pi/L`` (resonance) or None.
    """
    head_axis = 3 - token_axis
    b, s, d = q.shape[0], q.shape[token_axis], q.shape[-1]
    hq = q.shape[head_axis]
    hk = 0 if k is None else k.shape[head_axis]
    kk, kko = (q, q_out) if k is None else (k, k_out)
    p = rotary_dim // 2
    block_s, hg, warps = launch_params(s, b, hq, hk, p)
    gq, gk = -(-hq // hg), -(-hk // hg)
    grid = (-(-s // block_s), b, gq + gk)
    passthrough = rotary_dim < d and q_out.data_ptr() != q.data_ptr()
    pos_sb, pos_ss = pos_strides or pos.stride()

    def st(t):
        return t.stride(0), t.stride(head_axis), t.stride(token_axis)

    pointers = (q, kk, q_out, kko, pos, freq, freq if step is None else step)
    ints = (s, hq, hk, gq, *st(q), *st(kk), *st(q_out), *st(kko), pos_sb, pos_ss)
    args = pointers + ints + (float(scale), float(sin_sign))
    const_args = (p, half, resonance, passthrough, d, rotary_dim, block_s, hg)
    if not DIRECT_LAUNCH or torch.compiler.is_compiling():  # Triton's launcher; traced by torch.compile
        _rope_kernel[grid](*args, **_consts(*const_args), num_warps=warps)
        return
    consts, const_values = _constexprs(*const_args)
    key = (q.device, grid, warps, const_values, ints) + tuple((t.dtype, t.data_ptr() % 16) for t in pointers)
    kernel = _COMPILED.get(key)
    if kernel is not None:
        try:
            kernel[grid](*args, *const_values)
            return
        except TypeError as exc:  # a Triton whose compiled launcher takes other arguments
            _disable_direct_launch(exc)
    if len(_COMPILED) > 4096:
        _COMPILED.clear()
    _COMPILED[key] = _rope_kernel[grid](*args, **consts, num_warps=warps)  # compiles or finds; launches


def _disable_direct_launch(exc: Exception) -> None:
    global DIRECT_LAUNCH
    DIRECT_LAUNCH = False
    _COMPILED.clear()
    warnings.warn(f"rrope_torch: direct Triton launch unavailable ({exc}); using Triton's launcher", stacklevel=3)


def _consts(p, half, resonance, passthrough, d, rotary_dim, block_s, hg) -> dict:
    """The kernel's compile-time arguments by name (uncached: ``torch.compile`` traces this one)."""
    return dict(
        P=p, BLOCK_P=_pow2(p), HALF=half, RESONANCE=resonance, PASS=passthrough, D=d,
        BLOCK_PASS=_pow2(max(d - rotary_dim, 1)), BLOCK_S=block_s, HG=hg, LIBDEVICE=_LIBDEVICE,
    )  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _constexprs(p, half, resonance, passthrough, d, rotary_dim, block_s, hg) -> tuple[dict, tuple]:
    """The kernel's compile-time arguments by name, and their values in signature order (a compiled
    kernel's launcher takes every parameter, constexprs included, positionally)."""
    consts = _consts(p, half, resonance, passthrough, d, rotary_dim, block_s, hg)
    return consts, tuple(consts.values())
