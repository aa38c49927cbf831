"""Exact rotary phases in ``keras.ops`` with int32 integers only (no overflow, no wrap-around).

Resonance configs (integer wavelength ``L``, Wang et al. 2024, eq. 6): ``r = m mod L`` in int32
(``keras.ops.mod`` is a floor mod: ``[0, L)`` for any sign of ``m``, exact), centred to
``(-L/2, L/2]``, angle ``c(r) * c(2*pi/L)`` in the compute dtype ``c`` (float32; float64 for
float64 inputs): the cast of ``r``, the constant and the product each round by <= eps_c/2
relative and ``|angle| <= pi``, so the error is <= 1.5*pi*eps_c. A period beyond int32 (dynamic
NTK at huge ``seq_len``) takes the fixed-point path below with ``f = 1/L`` (an exact fraction).

Other configs: the angle in turns, ``frac(m * f)`` with ``f = frac(theta / (2*pi))`` (``theta``
the float64 ``rr.inv_freq``, 2*pi to 107 bits as rrope_core/phases.py splits it), in fixed point.
The host gives ``f`` as ``J = 8`` limbs ``F_j < 2**15`` (``f ~ sum F_j 2**(-15(j+1))``, 120 bits,
Python ``Fraction``); ``|m| <= 2**31`` is three limbs ``m_0 <= 2**15``, ``m_1 < 2**15``,
``m_2 <= 1`` (a negative ``m`` is ``|m| = -(m+1) + 1``, the ``+1`` going into ``m_0``, so even
``-2**31`` needs no overflowing negation). Every product ``m_i * F_j < 2**30``; split into 15-bit
halves it lands in columns of weight ``2**(-15k)``, ``k = j - i + 1``; columns ``k <= 0`` are whole
turns (dropped), columns are summed (< 6 * 2**15 each) and carries propagated, all in int32.
Kept: every product with ``k <= K`` and the high halves of ``k = K + 1``; what is dropped is
positive and < ``6.01 * 2**(-15K)`` turns (``|m| * 2**-120`` more for the limbs of ``f``, and
the 107-bit 2*pi costs < 2**-70 turns: both negligible).

* float32 (``K = 3``): ``T = frac(|m| f)`` rounded to units of ``2**-30`` turns (error <= 2**-31
  + 6.01*2**-45 turns, i.e. ~pi*eps32/128 rad), centred to ``[-2**29, 2**29]``, negated for
  ``m < 0``, cast to float32 and multiplied by ``fl32(2*pi * 2**-30)``: the cast, the constant
  and the product each <= eps32/2 relative of ``|angle| <= pi``. Total <= 1.51*pi*eps32 rad at
  every int32 position.
* float64 (``K = 5``): the same in two 30-bit words, ``hi + lo * 2**-30`` units of ``2**-30``
  turns (fixed point error <= 2**-61 + 6.01*2**-75 turns, ~pi*eps64/256 rad), combined (one
  rounding) and scaled in float64: <= 1.51*pi*eps64 rad.

The contract allows ``2*pi*eps_c`` (conformance/tolerance.py), at every position below 2**31.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from keras import ops

import rrope_core as rr

__all__ = ["Constants", "constants", "phases", "LIMB", "COLUMNS"]

_TWO_PI_EXACT = Fraction(6.283185307179586) + Fraction(2.4492935982947064e-16)  # rrope_core/phases.py's split
LIMB = 15  # bits per limb: a limb product is < 2**30, a column sum < 6 * 2**15
_MASK = (1 << LIMB) - 1
_INT32_MAX = 2**31 - 1
#: Fixed-point columns kept per compute dtype (K above): 2**-45 turns for float32, 2**-75 for float64.
COLUMNS = {"float32": 3, "float64": 5}


@dataclass(frozen=True)
class Constants:
    """Host constants of one ``(cfg, seq_len)`` (NumPy, read-only)."""

    attention: float
    periods: np.ndarray | None  # resonance: int32 L (1 where L is beyond int32)
    step: np.ndarray | None  # resonance: 2*pi/L in float64
    fixed: np.ndarray | None  # (J, n_pairs) int32 limbs of f for the fixed-point pairs (zeros elsewhere)
    use_fixed: np.ndarray | None  # resonance: the pairs whose period is beyond int32


def _limbs(fractions: list[Fraction], count: int) -> np.ndarray:
    """``(count, n)`` int32: ``floor(frac(q) * 2**(15*count))`` of each ``q`` in 15-bit limbs, most significant first."""
    out = np.zeros((count, len(fractions)), dtype=np.int32)
    for col, q in enumerate(fractions):
        word = math.floor((q - math.floor(q)) * 2 ** (LIMB * count))
        for j in range(count):
            out[count - 1 - j, col] = (word >> (LIMB * j)) & _MASK
    return out


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


def constants(cfg: rr.RopeConfig, seq_len: int | None) -> Constants:
    """Frequencies (all from rrope_core) split for int32 arithmetic, for a resolved ``seq_len``
    (ignored unless the config depends on it); cached per frozen config."""
    return _constants(cfg, seq_len if cfg.seq_len_dependent else None)


@lru_cache(maxsize=256)
def _constants(cfg: rr.RopeConfig, seq_len: int | None) -> Constants:
    attention = float(rr.attention_factor(cfg, seq_len))
    count = max(COLUMNS.values()) + 3  # J = 8: every limb a product with k <= K + 1 needs (j <= K + 2)
    if cfg.resonance:
        periods = rr.integer_wavelengths(cfg, seq_len)
        big = periods > _INT32_MAX
        fixed = None
        if big.any():
            fixed = _limbs(
                [
                    Fraction(1, int(L)) if b else Fraction(0)
                    for L, b in zip(periods.tolist(), big.tolist(), strict=True)
                ],
                count,
            )
        return Constants(
            attention,
            _frozen(np.where(big, 1, periods).astype(np.int32)),
            _frozen(2 * np.pi / periods),
            None if fixed is None else _frozen(fixed),
            _frozen(big) if big.any() else None,
        )
    theta = rr.inv_freq(cfg, seq_len).tolist()
    fixed = _limbs([Fraction(th) / _TWO_PI_EXACT for th in theta], count)
    return Constants(attention, None, None, _frozen(fixed), None)


def _turns(m, fixed: np.ndarray, compute: str):
    """``frac(m * f)`` in units of ``2**-30`` turns, centred, in ``compute`` (float32 or float64).

    ``m``: int32 of shape ``P + (1,)``; ``fixed``: the ``(J, n)`` limbs of ``f``. All limb products
    are one ``(3, K+1) + P + (n,)`` multiply (``[i, k-1]`` holds ``m_i * F_{k+i-1}``).
    """
    k_max = COLUMNS[compute]
    rank = len(m.shape)
    negative = ops.less(m, 0)
    a = ops.where(negative, ops.negative(ops.add(m, 1)), m)  # |m| - (1 if m < 0): in [0, 2**31 - 1], no overflow
    shifts = np.array([0, LIMB, 2 * LIMB], np.int32).reshape((3,) + (1,) * rank)
    plus_one = np.array([1, 0, 0], np.int32).reshape((3,) + (1,) * rank)
    limbs = ops.bitwise_and(ops.right_shift(ops.expand_dims(a, 0), shifts), _MASK)  # m_0, m_1 < 2**15; m_2 <= 1
    limbs = ops.add(limbs, ops.multiply(ops.cast(negative, "int32"), plus_one))  # m_0 + 1 <= 2**15 for m < 0
    g = np.stack([fixed[i : i + k_max + 1] for i in range(3)])  # (3, K+1, n): F_{k+i-1}
    g = g.reshape((3, k_max + 1) + (1,) * (rank - 1) + g.shape[-1:])
    products = ops.multiply(ops.expand_dims(limbs, 1), g)  # each < 2**15 * 2**15 = 2**30
    lo = ops.sum(ops.bitwise_and(products, _MASK), axis=0)  # (K+1, P, n), < 3 * 2**15: weight 2**(-15k)
    hi = ops.sum(ops.right_shift(products, LIMB), axis=0)  # weight 2**(-15(k-1)); k = 1 is whole turns
    columns = ops.add(ops.split(lo, [k_max], axis=0)[0], ops.split(hi, [1], axis=0)[1])  # columns 1..K, < 6 * 2**15
    cols = list(ops.unstack(columns, k_max, axis=0))
    for c in range(k_max - 1, 0, -1):  # carries, least significant first: < 2**15 after
        cols[c - 1] = ops.add(cols[c - 1], ops.right_shift(cols[c], LIMB))
        cols[c] = ops.bitwise_and(cols[c], _MASK)
    cols[0] = ops.bitwise_and(cols[0], _MASK)  # whole turns dropped
    hi = ops.add(ops.left_shift(cols[0], LIMB), cols[1])  # 2**-30 turns, < 2**30
    half = 2 ** (2 * LIMB - 1)
    if compute == "float32":
        t = ops.add(hi, ops.cast(ops.greater_equal(cols[2], 2 ** (LIMB - 1)), "int32"))  # round to nearest: <= 2**30
        t = ops.where(ops.greater_equal(t, half), ops.subtract(t, 2 ** (2 * LIMB)), t)
        t = ops.cast(ops.where(negative, ops.negative(t), t), compute)
    else:
        lo = ops.add(ops.left_shift(cols[2], LIMB), cols[3])  # the next 30 bits
        lo = ops.add(lo, ops.cast(ops.greater_equal(cols[4], 2 ** (LIMB - 1)), "int32"))  # <= 2**30
        hi = ops.where(ops.greater_equal(hi, half), ops.subtract(hi, 2 ** (2 * LIMB)), hi)
        t = ops.add(ops.cast(hi, compute), ops.multiply(ops.cast(lo, compute), 2.0 ** (-2 * LIMB)))
        t = ops.where(negative, ops.negative(t), t)
    return ops.multiply(t, ops.convert_to_tensor(np.asarray(2 * np.pi * 2.0 ** (-2 * LIMB), compute)))


def phases(positions, k: Constants, compute: str):
    """Angles of shape ``positions.shape + (n_pairs,)`` in ``compute`` (float32 or float64), in ``[-pi, pi]``.

    ``positions``: an int32 tensor (rrope_keras.convert.as_positions).
    """
    m = ops.expand_dims(positions, -1)
    if k.periods is None:
        return _turns(m, k.fixed, compute)
    period = ops.convert_to_tensor(k.periods)
    r = ops.mod(m, period)  # floor mod: in [0, L)
    r = ops.where(ops.greater(r, ops.convert_to_tensor(k.periods // 2)), ops.subtract(r, period), r)
    angle = ops.multiply(ops.cast(r, compute), ops.convert_to_tensor(k.step.astype(compute)))
    if k.use_fixed is not None:
        angle = ops.where(ops.convert_to_tensor(k.use_fixed), _turns(m, k.fixed, compute), angle)
    return angle
