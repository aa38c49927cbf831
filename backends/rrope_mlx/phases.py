"""Exact rotary phases on the MLX device, without float64 on the GPU.

Resonance configs (integer wavelength ``L``, Wang et al. 2024, eq. 6): ``r = m mod L`` in int64,
centred to ``(-L/2, L/2]``, angle ``r * (2*pi/L)`` with ``2*pi/L`` computed in float64 on the host
and cast to the compute dtype ``c``. In float32 three roundings (``r``, ``2*pi/L``, the product)
give ``<= 1.5*pi*eps32`` (< the conformance budget ``2*pi*eps32``) at any int64 position.

Other configs: ``m*theta mod 2*pi = 2*pi * frac(m*f)`` with ``f = theta/(2*pi)``. On the host
``frac(f)`` is taken exactly (Python ``Fraction``, 2*pi to 107 bits) and truncated to 96 bits,
held as four 24-bit int64 limbs ``F1..F4``; ``m`` is split into limbs ``M0, M1`` (24 bits) and
``M2 = m >> 48``. Every ``Mk*Fj`` is < 2**48, exact in int64; products whose weight
``2**(24(k-j))`` is >= 1 are whole turns and dropped, the rest are summed in fixed point at
``2**-48`` turns and reduced mod ``2**48`` with a mask: exact up to ``2**-47`` turns (the dropped
``S3`` low bits and ``M0*F4``) plus the 96-bit truncation (``|m|*2**-96 <= 2**-33`` turns).
The centred residue ``t`` in ``(-1/2, 1/2]`` is cast to float32 (``<= 2**-26`` turns) and
multiplied by ``fl32(2*pi)`` (``<= pi*eps32/2 + eps32``): in total ``<= (pi + 1)*eps32 + 1e-9``
radians, inside ``2*pi*eps32`` (conformance/tolerance.py). No float64 anywhere on the device.

float64 compute (float64 ``x``, CPU only): the top 48 bits of ``f`` go through the same exact
integer path, the rest ``f_lo < 2**-48`` as a float64 product ``m*f_lo`` (resonance: ``r/L``):
turns within ``~2*eps64 + eps64*|m*theta|/(2*pi)``, inside the float64 budget. cos/sin come from
``_sincos64``, because MLX's float64 ``cos``/``sin`` are only float32-accurate.

int64 is implemented by MLX on every device it runs on (CPU, Metal), so positions are widened to
int64 and no int32 fallback (with its 2**31 limit) is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import mlx.core as mx
import numpy as np

import rrope_core as rr

__all__ = ["Constants", "constants", "phases", "cos_sin"]

# 2*pi = _TWO_PI_HI + _TWO_PI_LO to ~107 bits (the reference's split, rrope_core/phases.py).
_TWO_PI_HI = 6.283185307179586
_TWO_PI_LO = 2.4492935982947064e-16
_TWO_PI_EXACT = Fraction(_TWO_PI_HI) + Fraction(_TWO_PI_LO)
_LIMB = 24
_MASK24 = (1 << 24) - 1
_MASK48 = (1 << 48) - 1


@dataclass(frozen=True)
class Constants:
    """Host (NumPy) constants of one ``(cfg, seq_len)``; ``lru_cache``d by ``constants``."""

    theta: np.ndarray  # rr.inv_freq, float64, (P,)
    theta_max: float
    attention: float  # rr.attention_factor
    periods: np.ndarray | None  # resonance: rr.integer_wavelengths, int64
    step: np.ndarray | None  # resonance: 2*pi/L, float64
    limbs: np.ndarray | None  # other: floor(frac(theta/2pi) * 2**96) as (4, P) int64 24-bit limbs, high first
    frac_lo: np.ndarray | None  # other: frac(theta/2pi) - (F1*2**-24 + F2*2**-48), float64, in [0, 2**-48)


def _turn_limbs(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    limbs = np.zeros((4, theta.size), dtype=np.int64)
    lo = np.zeros(theta.size, dtype=np.float64)
    for i, th in enumerate(theta.tolist()):
        q = Fraction(th) / _TWO_PI_EXACT
        f = q - math.floor(q)
        top = math.floor(f * 2**96)
        limbs[:, i] = [(top >> (_LIMB * s)) & _MASK24 for s in (3, 2, 1, 0)]
        lo[i] = float(f - Fraction(top >> 48, 2**48))
    return limbs, lo


@lru_cache(maxsize=256)
def constants(cfg: rr.RopeConfig, seq_len: int | None) -> Constants:
    """Frequencies (all from rrope_core) and the host-side split of each, for a resolved ``seq_len``."""
    theta = rr.inv_freq(cfg, seq_len)
    common = dict(theta=theta, theta_max=float(np.max(theta)), attention=rr.attention_factor(cfg, seq_len))
    if cfg.resonance:
        periods = rr.integer_wavelengths(cfg, seq_len)
        return Constants(**common, periods=periods, step=2 * np.pi / periods, limbs=None, frac_lo=None)
    limbs, lo = _turn_limbs(theta)
    return Constants(**common, periods=None, step=None, limbs=limbs, frac_lo=lo)


def _i64(v: int) -> mx.array:
    return mx.array(v, dtype=mx.int64)


def _resonance(m: mx.array, k: Constants, c) -> mx.array:
    period = mx.array(k.periods)
    r = mx.remainder(m, period)  # floor mod: in [0, L) for any sign of m
    r = mx.where(r > period // 2, r - period, r)
    return r.astype(c) * mx.array(k.step, dtype=c)


def _turns(m: mx.array, k: Constants, c) -> mx.array:
    """``frac(m*f)`` centred to ``[-1/2, 1/2]``, in dtype ``c`` (see the module docstring)."""
    mask24, mask48 = _i64(_MASK24), _i64(_MASK48)
    m0 = mx.bitwise_and(m, mask24)
    m1 = mx.bitwise_and(mx.right_shift(m, _i64(24)), mask24)
    m2 = mx.right_shift(m, _i64(48))  # arithmetic: m = m0 + m1*2**24 + m2*2**48 for negative m too
    f1, f2, f3, f4 = (mx.array(row) for row in k.limbs)
    if c == mx.float64:
        s1, s2, s3 = m0 * f1 + m1 * f2, m0 * f2, None
    else:
        s1 = m0 * f1 + m1 * f2 + m2 * f3
        s2 = m0 * f2 + m1 * f3 + m2 * f4
        s3 = m0 * f3 + m1 * f4
    acc = mx.left_shift(mx.bitwise_and(s1, mask24), _i64(24)) + mx.bitwise_and(s2, mask48)
    if s3 is not None:
        acc = acc + mx.right_shift(s3, _i64(24))
    acc = mx.bitwise_and(acc, mask48)
    acc = mx.where(acc > _i64(1 << 47), acc - _i64(1 << 48), acc)
    t = acc.astype(c) * (2.0**-48)
    if c == mx.float64:
        t = t + m.astype(mx.float64) * mx.array(k.frac_lo, dtype=mx.float64)
        t = t - mx.round(t)
    return t


def _sincos64(t: mx.array) -> tuple[mx.array, mx.array]:
    """``cos, sin(2*pi*t)`` for float64 turns ``t`` in ``[-1/2, 1/2]``, from float64 + and * only.

    MLX evaluates float64 ``cos``/``sin`` to float32 accuracy (measured: 1.3e-7), so: quadrant
    ``q = round(4t)``, ``r = t - q/4`` in ``[-1/8, 1/8]`` (exact, Sterbenz), ``x = 2*pi*r`` with 2*pi in
    two doubles, Taylor series to ``x**17`` / ``x**16`` (remainder < 3e-18 for ``|x| <= pi/4``),
    then ``(cos, sin)(x + q*pi/2)`` by swapping and negating.
    """
    q = mx.round(4 * t)
    r = t - q * 0.25
    x = r * _TWO_PI_HI + r * _TWO_PI_LO
    x2 = x * x
    s = mx.zeros_like(x)
    for n in range(17, 1, -2):  # sin: x * sum_k (-x2)^k / (2k+1)!
        s = (s - 1.0 / math.factorial(n)) * x2 if (n // 2) % 2 else (s + 1.0 / math.factorial(n)) * x2
    s = x + x * s
    c = mx.zeros_like(x)
    for n in range(16, 0, -2):
        c = (c - 1.0 / math.factorial(n)) * x2 if (n // 2) % 2 else (c + 1.0 / math.factorial(n)) * x2
    c = 1.0 + c
    q = mx.remainder(q, 4.0)  # 0, 1, 2, 3
    cos = mx.where(q == 0, c, mx.where(q == 1, -s, mx.where(q == 2, -c, s)))
    sin = mx.where(q == 0, s, mx.where(q == 1, c, mx.where(q == 2, -s, -c)))
    return cos, sin


def _turns_of(positions: mx.array, k: Constants, c) -> mx.array:
    m = mx.expand_dims(positions.astype(mx.int64), -1)
    if k.periods is None:
        return _turns(m, k, c)
    period = mx.array(k.periods)
    r = mx.remainder(m, period)
    r = mx.where(r > period // 2, r - period, r)
    return r.astype(mx.float64) / period.astype(mx.float64)


def phases(positions: mx.array, k: Constants, c=mx.float32) -> mx.array:
    """Angles ``m*theta_i`` reduced to ``[-pi, pi]``, shape ``positions.shape + (P,)``, dtype ``c``."""
    if c == mx.float64:
        return _turns_of(positions, k, c) * (2 * np.pi)
    m = mx.expand_dims(positions.astype(mx.int64), -1)
    if k.periods is not None:
        return _resonance(m, k, c)
    return _turns(m, k, c) * mx.array(2 * np.pi, dtype=c)


def cos_sin(positions: mx.array, k: Constants, c=mx.float32) -> tuple[mx.array, mx.array]:
    """``cos(phi), sin(phi)`` of ``phases`` in dtype ``c`` (float64 through ``_sincos64``)."""
    if c == mx.float64:
        return _sincos64(_turns_of(positions, k, c))
    phi = phases(positions, k, c)
    return mx.cos(phi), mx.sin(phi)
