"""One Triton launch that rotates q and k (any head counts, any strides) with exact phases.

Grid ``(token blocks, batch, head groups)``; a program computes cos/sin for its ``BLOCK_S``
tokens once and reuses them for ``HG`` heads of q and k. Phases (same as rrope_core):
integer wavelengths -> ``r = m mod L`` in int64, centred, ``r * (2*pi/L)`` in float32;
otherwise ``fmod(m*theta, 2*pi)`` in float64, centred, then float32. Trig is libdevice's
accurate ``cosf``/``sinf``; math in float32; I/O in the tensors' dtype. The inverse rotation
and the backward are the same kernel with ``SIN_SIGN = -1``. No cos/sin table is stored.
"""

from __future__ import annotations

import math
import os

import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = ["rope_launch"]

# Triton's CPU interpreter (TRITON_INTERPRET=1, used by the CPU tests) has no libdevice: there the
# kernel uses tl.cos/tl.sin and floor-based fmod. On GPUs it always uses libdevice.
_LIBDEVICE = os.environ.get("TRITON_INTERPRET", "0") != "1"


@triton.jit
def _rotate_tile(
    src,
    dst,
    s_tok,
    d_tok,
    tok,
    tmask,
    cos,
    sin,
    scale,
    P: tl.constexpr,
    BLOCK_P: tl.constexpr,
    HALF: tl.constexpr,
    PASS: tl.constexpr,
    D: tl.constexpr,
    BLOCK_PASS: tl.constexpr,
):
    i = tl.arange(0, BLOCK_P)
    m2 = tmask[:, None] & (i < P)[None, :]
    if HALF:
        o1, o2 = i, i + P
    else:
        o1, o2 = 2 * i, 2 * i + 1
    row_s = src + tok[:, None].to(tl.int64) * s_tok
    row_d = dst + tok[:, None].to(tl.int64) * d_tok
    x1 = tl.load(row_s + o1[None, :], mask=m2, other=0.0).to(tl.float32)
    x2 = tl.load(row_s + o2[None, :], mask=m2, other=0.0).to(tl.float32)
    y1 = (x1 * cos - x2 * sin) * scale
    y2 = (x2 * cos + x1 * sin) * scale
    tl.store(row_d + o1[None, :], y1.to(dst.dtype.element_ty), mask=m2)
    tl.store(row_d + o2[None, :], y2.to(dst.dtype.element_ty), mask=m2)
    if PASS:  # out of place with rotary_dim < head_dim: copy the pass-through features
        j = 2 * P + tl.arange(0, BLOCK_PASS)
        mp = tmask[:, None] & (j < D)[None, :]
        tl.store(row_d + j[None, :], tl.load(row_s + j[None, :], mask=mp), mask=mp)


@triton.jit
def _rope_kernel(
    Q,
    K,
    QO,
    KO,
    POS,
    FREQ,
    STEP,
    S,
    HQ,
    HK,
    q_sb,
    q_sh,
    q_ss,
    k_sb,
    k_sh,
    k_ss,
    qo_sb,
    qo_sh,
    qo_ss,
    ko_sb,
    ko_sh,
    ko_ss,
    p_sb,
    p_ss,
    scale,
    sin_sign,
    P: tl.constexpr,
    BLOCK_P: tl.constexpr,
    HALF: tl.constexpr,
    RESONANCE: tl.constexpr,
    PASS: tl.constexpr,
    D: tl.constexpr,
    BLOCK_PASS: tl.constexpr,
    BLOCK_S: tl.constexpr,
    HG: tl.constexpr,
    LIBDEVICE: tl.constexpr,
):
    pid_s = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    g = tl.program_id(2)
    tok = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    tmask = tok < S
    i = tl.arange(0, BLOCK_P)
    pmask = i < P
    pos = tl.load(POS + b * p_sb + tok.to(tl.int64) * p_ss, mask=tmask, other=0).to(tl.int64)
    if RESONANCE:
        period = tl.load(FREQ + i, mask=pmask, other=1)
        r = pos[:, None] % period[None, :]
        r = tl.where(r > period[None, :] // 2, r - period[None, :], r)
        r = tl.where(2 * r < -period[None, :], r + period[None, :], r)
        ang = r.to(tl.float32) * tl.load(STEP + i, mask=pmask, other=0.0)[None, :]
    else:
        theta = tl.load(FREQ + i, mask=pmask, other=0.0)
        a64 = pos[:, None].to(tl.float64) * theta[None, :]
        if LIBDEVICE:
            a64 = libdevice.fmod(a64, 6.283185307179586)
        else:
            a64 = a64 - tl.floor(a64 / 6.283185307179586) * 6.283185307179586
        a64 = tl.where(a64 > 3.141592653589793, a64 - 6.283185307179586, a64)
        a64 = tl.where(a64 < -3.141592653589793, a64 + 6.283185307179586, a64)
        ang = a64.to(tl.float32)
    if LIBDEVICE:
        cos = libdevice.cos(ang)
        sin = libdevice.sin(ang) * sin_sign
    else:
        cos = tl.cos(ang)
        sin = tl.sin(ang) * sin_sign
    for hh in range(HG):
        h = g * HG + hh
        if h < HQ:
            _rotate_tile(
                Q + b * q_sb + h * q_sh,
                QO + b * qo_sb + h * qo_sh,
                q_ss,
                qo_ss,
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
            )
        elif h < HQ + HK:
            hk = h - HQ
            _rotate_tile(
                K + b * k_sb + hk * k_sh,
                KO + b * ko_sb + hk * ko_sh,
                k_ss,
                ko_ss,
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
            )


_TARGET_PROGRAMS = 1056  # ~8 per SM on an H100/H200 (132 SMs): enough to hide memory latency


def rope_launch(q, k, q_out, k_out, pos, freq, step, cfg, scale: float, sin_sign: float, token_axis: int):
    """Launch on 4-D ``q``/``k`` (``k`` may be None) whose last stride is 1.

    ``token_axis`` is 1 (``(B,S,H,D)``) or 2 (``(B,H,S,D)``); the other middle axis is heads.
    ``pos`` is ``(B, S)`` with any strides (stride 0 where shared). ``freq`` holds the int64
    periods (resonance) or float64 ``theta``; ``step`` the float32 ``2*pi/L`` (resonance) or None.
    """
    head_axis = 3 - token_axis
    b, s = q.shape[0], q.shape[token_axis]
    hq = q.shape[head_axis]
    hk = 0 if k is None else k.shape[head_axis]
    kk, kko = (q, q_out) if k is None else (k, k_out)
    p = cfg.rotary_dim // 2
    block_s = min(16, triton.next_power_of_2(s))
    n_s = triton.cdiv(s, block_s)
    groups = max(1, min(hq + hk, math.ceil(_TARGET_PROGRAMS / (n_s * b))))
    hg = triton.cdiv(hq + hk, groups)
    grid = (n_s, b, triton.cdiv(hq + hk, hg))
    d = q.shape[-1]
    passthrough = cfg.rotary_dim < d and q_out.data_ptr() != q.data_ptr()

    def st(t):
        return t.stride(0), t.stride(head_axis), t.stride(token_axis)

    _rope_kernel[grid](
        q,
        kk,
        q_out,
        kko,
        pos,
        freq,
        freq if step is None else step,
        s,
        hq,
        hk,
        *st(q),
        *st(kk),
        *st(q_out),
        *st(kko),
        pos.stride(0),
        pos.stride(1),
        float(scale),
        float(sin_sign),
        P=p,
        BLOCK_P=triton.next_power_of_2(p),
        HALF=cfg.layout == "half",
        RESONANCE=cfg.resonance,
        PASS=passthrough,
        D=d,
        BLOCK_PASS=triton.next_power_of_2(max(d - cfg.rotary_dim, 1)),
        BLOCK_S=block_s,
        HG=hg,
        LIBDEVICE=_LIBDEVICE,
        num_warps=4 if block_s * triton.next_power_of_2(p) >= 512 else 2,
    )
