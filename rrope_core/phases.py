"""Exact rotary phases ``m * theta_i mod 2*pi``, reduced to ``[-pi, pi]`` (float64).

Resonance configs (integer wavelength ``L``): ``2*pi * (r / L)`` with ``r = m mod L`` computed
in int64, re-centred to ``(-L/2, L/2]``. Exact reduction at any int64 position; the only
roundings are ``r/L`` and the product with ``2*pi``: error <= 1.5 ulp(pi) ~ 7e-16.

Other configs: ``m * theta`` as an unevaluated double-double sum (Dekker's TwoProduct), reduced
by ``2*pi`` held in two doubles (Cody-Waite). Taking the float64 ``theta`` as exact, the reduced
angle is within 2 ulp(pi) ~ 9e-16 of the true residue for ``0 <= m < 2**53`` (see reduce_phase).
(Dekker 1971, "A floating-point technique for extending the available precision"; Cody & Waite 1980.)
"""

from __future__ import annotations

import numpy as np

from .config import RopeConfig
from .frequencies import integer_wavelengths, scaled_inv_freq
from .limits import BLOCK_ELEMENTS, FLOAT64_BYTES, check_fits

__all__ = ["phases", "reduce_phase", "resonance_phase"]

# 2*pi = _TWO_PI_HI + _TWO_PI_LO to ~107 bits.
_TWO_PI_HI = 6.283185307179586
_TWO_PI_LO = 2.4492935982947064e-16
_SPLITTER = 134217729.0  # 2**27 + 1 (Veltkamp split)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a*b == p + e`` exactly (Dekker)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def reduce_phase(m: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``m * theta mod 2*pi`` in ``[-pi, pi]`` for float64 ``m`` (exact integers < 2**53) and ``theta``.

    ``m*theta = p + e`` exactly; ``k*C1 = q + qe`` exactly; ``d = p - q`` is exact (Sterbenz).
    ``k = rint(p/C1)`` may be off by one, so one more exact step ``d - j*C1`` re-centres before the
    small terms are added: the result rounds once at magnitude <= pi (0.5 ulp(pi)) plus <= 4
    roundings of terms <= 1 (~0.9 ulp(pi)) -> error <= 2 ulp(pi) taking ``theta`` as exact.
    """
    p, e = _two_prod(m, theta)
    k = np.rint(p / _TWO_PI_HI)
    q, qe = _two_prod(k, np.full_like(k, _TWO_PI_HI))
    d = p - q
    t = (e - qe) - k * _TWO_PI_LO
    j = np.rint((d + t) / _TWO_PI_HI)
    return (d - j * _TWO_PI_HI) + (t - j * _TWO_PI_LO)


def resonance_phase(m: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """``2*pi * ((m mod L)/L)`` with the residue in int64, centred to ``(-L/2, L/2]``."""
    r = np.mod(m, periods)
    r = np.where(r > periods // 2, r - periods, r)
    return _TWO_PI_HI * (r / periods)


def phases(cfg: RopeConfig, positions: np.ndarray, seq_len: int | None = None) -> np.ndarray:
    """Angles of shape ``positions.shape + (rotary_dim//2,)`` for validated int64 ``positions``.

    Computed in blocks of ``limits.BLOCK_ELEMENTS`` angles: the table plus 8 MiB temporaries.
    """
    n = cfg.n_pairs
    what = f"a float64 phase table of positions.size={positions.size} x cfg.n_pairs={n}"
    check_fits("positions.shape", positions.shape, positions.size * n * FLOAT64_BYTES, what)
    freq = integer_wavelengths(cfg, seq_len) if cfg.resonance else scaled_inv_freq(cfg, seq_len)
    out = np.empty(positions.shape + (n,))
    flat, rows = positions.reshape(-1, 1), out.reshape(-1, n)
    step = max(1, BLOCK_ELEMENTS // n)
    for first in range(0, len(flat), step):
        m = flat[first : first + step]
        rows[first : first + step] = (
            resonance_phase(m, freq) if cfg.resonance else reduce_phase(m.astype(np.float64), freq)
        )
    return out
