"""High-precision ground truth for phases, in exact rational arithmetic (no floating point)."""

from __future__ import annotations

import math
from fractions import Fraction


def _arctan_inv(x: int, one: int) -> int:
    """``one * atan(1/x)`` by its Taylor series, in integers."""
    total = term = one // x
    x2, n, sign = x * x, 3, -1
    while term:
        term //= x2
        total += sign * (term // n)
        sign, n = -sign, n + 2
    return total


def two_pi(bits: int = 256) -> Fraction:
    """2*pi to ``bits`` bits by Machin's formula pi = 16 atan(1/5) - 4 atan(1/239)."""
    one = 1 << (bits + 16)
    return Fraction(2 * (16 * _arctan_inv(5, one) - 4 * _arctan_inv(239, one)), one)


TWO_PI = two_pi()


def centred(angle: Fraction) -> float:
    """``angle mod 2*pi`` centred to ``[-pi, pi)``, rounded to float64 once."""
    r = angle - TWO_PI * math.floor(angle / TWO_PI)
    if r >= TWO_PI / 2:
        r -= TWO_PI
    return float(r)


def phase_float_theta(m: int, theta: float) -> float:
    """``m * theta mod 2*pi`` taking the float64 ``theta`` as an exact rational."""
    return centred(m * Fraction(theta))


def phase_integer_period(m: int, period: int) -> float:
    """``2*pi * m / L mod 2*pi``: Resonance RoPE's angle with integer wavelength ``L``."""
    return centred(TWO_PI * Fraction(m % period, period))
