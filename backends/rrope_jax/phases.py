"""Exact rotary phases on the JAX device with 32-bit integers (64-bit with ``jax_enable_x64``).

Resonance configs (integer wavelength ``L``, Wang et al. 2024, eq. 6): ``r = m mod L`` in the
position's integer type (exact), centred to ``(-L/2, L/2]``, angle ``r * fl(2*pi/L)``: in float32
<= 1.5*pi*eps32 (three roundings) while ``L < 2**24``. Periods beyond the integer type (dynamic
NTK at huge seq_len) exceed every position, so ``r = m``: ``fl(m) * fl(2*pi/L)``, re-centred.

Other configs: the angle in turns, ``frac(m * f)`` with ``f = theta/(2*pi)``, in ``w``-bit fixed
point (``w`` = 32, or 64 with x64) in wrapping unsigned arithmetic: the host gives
``F = floor(frac(f) * 2**(2w))`` (Python ``Fraction``, 2*pi to 107 bits) as words ``F_hi, F_lo``;
then ``T = |m|*F_hi + mulhi(|m|, F_lo) mod 2**w`` is ``floor(|m|*F / 2**w) mod 2**w`` exactly
(``mulhi`` from half-word products, each exact), i.e. ``frac(|m| f)`` in units of ``2**-w`` turns,
low by less than ``1 + |m| * 2**-w`` units. Negative ``m`` negates ``T`` (mod ``2**w``). ``T`` read
as a signed integer is the centred residue; cast to float32 (<= 2**-25 turns) and multiplied by
``fl32(2*pi * 2**-w)``: <= ~1.5*pi*eps32 radians at every position below 2**31 (2**63 with x64).
No float64 on the device; nothing reads values on the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import jax.numpy as jnp
import numpy as np
from jax import lax

import rrope_core as rr

from .convert import x64

__all__ = ["Constants", "constants", "phases", "turns", "resonance_angles"]

_TWO_PI_EXACT = Fraction(6.283185307179586) + Fraction(2.4492935982947064e-16)  # rrope_core/phases.py's split


@dataclass(frozen=True)
class Constants:
    """Host constants of one ``(cfg, seq_len, word size)``."""

    attention: float
    periods: np.ndarray | None  # resonance: rr.integer_wavelengths
    step: np.ndarray | None  # resonance: 2*pi/L (float64)
    f_hi: np.ndarray | None  # other: the high word of floor(frac(theta/2pi) * 2**(2w))
    f_lo: np.ndarray | None  # other: its low word
    bits: int


@lru_cache(maxsize=256)
def constants(cfg: rr.RopeConfig, seq_len: int | None, bits: int) -> Constants:
    """Frequencies (all from rrope_core) split for the device, for a resolved ``seq_len``."""
    attention = rr.attention_factor(cfg, seq_len)
    if cfg.resonance:
        periods = rr.integer_wavelengths(cfg, seq_len)
        return Constants(attention, periods, 2 * np.pi / periods, None, None, bits)
    words = []
    for th in rr.inv_freq(cfg, seq_len).tolist():
        q = Fraction(th) / _TWO_PI_EXACT
        words.append(math.floor((q - math.floor(q)) * 2 ** (2 * bits)))
    mask = (1 << bits) - 1
    udt = np.uint64 if bits == 64 else np.uint32
    f_hi = np.array([w >> bits for w in words], dtype=udt)
    f_lo = np.array([w & mask for w in words], dtype=udt)
    return Constants(attention, None, None, f_hi, f_lo, bits)


def _mulhi(a, b, bits: int):
    """The high ``bits`` of the ``2*bits``-bit product of unsigned ``a`` and ``b`` (exact)."""
    h = bits // 2
    udt = a.dtype
    mask = jnp.asarray((1 << h) - 1, udt)
    sh = jnp.asarray(h, udt)
    a1, a0 = a >> sh, a & mask
    b1, b0 = b >> sh, b & mask
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> sh) + (p01 & mask) + (p10 & mask)  # < 3 * 2**h: no overflow
    return p11 + (p01 >> sh) + (p10 >> sh) + (mid >> sh)


def _turns(m, k: Constants):
    """``frac(m*f)`` in units of ``2**-bits`` turns as a signed integer (the centred residue)."""
    return turns(m, jnp.asarray(k.f_hi), jnp.asarray(k.f_lo), k.bits)


def turns(m, f_hi, f_lo, bits: int):
    """``_turns`` on device words ``f_hi``, ``f_lo`` (also the Pallas kernel's, on loaded blocks)."""
    udt, sdt = (jnp.uint64, jnp.int64) if bits == 64 else (jnp.uint32, jnp.int32)
    negative = m < 0
    a = lax.bitcast_convert_type(jnp.where(negative, -m, m).astype(sdt), udt)
    t = a * f_hi + _mulhi(a, f_lo, bits)
    t = jnp.where(negative, -t, t)  # unsigned negation wraps mod 2**bits
    return lax.bitcast_convert_type(t, sdt)


def resonance_angles(m, period, step, compute):
    """``(m mod L)`` centred to ``(-L/2, L/2]``, times ``fl(2*pi/L)``, for periods within ``m``'s type."""
    r = jnp.remainder(m, period)  # floor mod: in [0, L) for any sign of m
    r = jnp.where(r > period // 2, r - period, r)
    return r.astype(compute) * step


def phases(positions, k: Constants, compute):
    """Angles of shape ``positions.shape + (n_pairs,)`` in ``compute`` dtype, in ``[-pi, pi]``."""
    m = positions[..., None].astype(jnp.int64 if x64() else jnp.int32)
    if k.periods is not None:
        top = np.iinfo(np.int64 if x64() else np.int32).max
        big = k.periods > top  # L beyond the integer type: every position is its own residue
        period = jnp.asarray(np.where(big, 1, k.periods), m.dtype)
        angle = resonance_angles(m, period, jnp.asarray(k.step, compute), compute)
        if big.any():  # |m| < L: the angle m*(2*pi/L), centred to (-L/2, L/2] (one float rounding of m)
            far = m.astype(compute) * jnp.asarray(k.step, compute)
            # r = m - L past L/2, m + L at or below -L/2: integer thresholds (exact), capped at the
            # type's maximum (a larger one is beyond every position)
            above = jnp.asarray(np.minimum(k.periods // 2, top), m.dtype)
            below = jnp.asarray(np.minimum((k.periods - 1) // 2, top), m.dtype)
            far = jnp.where(m > above, far - 2 * np.pi, jnp.where(m < -below, far + 2 * np.pi, far))
            angle = jnp.where(jnp.asarray(big), far, angle)
        return angle
    return _turns(m, k).astype(compute) * jnp.asarray(2 * np.pi * 2.0**-k.bits, compute)
