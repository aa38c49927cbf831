"""Analysis of what a model sees out of distribution: the feature gap of Resonance RoPE.

Wang et al. 2024 (arXiv 2403.00071), section 3: for pair ``i`` the feature gap is the largest
distance from a feature angle at an OOD position ``m in [train_len, test_len)`` to the nearest
angle seen in training (``n in [0, train_len)``), measured on the circle. Theorem 1: with
integer wavelengths every pre-critical pair (``lambda~_i <= train_len``) has gap exactly 0.
"""

from __future__ import annotations

import numpy as np

from ._checks import positive_int
from .config import RopeConfig
from .errors import RopeInputError, bad
from .phases import phases

__all__ = ["feature_gap", "circular_distance"]

_CHUNK = 1 << 16


def circular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance on the unit circle between angles ``a`` and ``b`` (radians, in ``[0, pi]``)."""
    d = np.mod(np.abs(a - b), 2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def feature_gap(cfg: RopeConfig, train_len: int, test_len: int, seq_len: int | None = None) -> np.ndarray:
    """Per pair, ``max_{m in [L, T)} min_{n in [0, L)} dist(phi_i(m), phi_i(n))``, shape ``(rotary_dim//2,)``.

    Phases are the exact ones of :func:`rrope_core.phases.phases` (frequencies at ``seq_len``).
    """
    train_len = positive_int("train_len", train_len, RopeInputError)
    test_len = positive_int("test_len", test_len, RopeInputError)
    if test_len <= train_len:
        raise bad("test_len", test_len, f"must be > train_len={train_len}", RopeInputError)
    seen = np.sort(phases(cfg, np.arange(train_len, dtype=np.int64), seq_len), axis=0)  # (L, P)
    gap = np.zeros(cfg.n_pairs)
    for start in range(train_len, test_len, _CHUNK):
        ood = phases(cfg, np.arange(start, min(start + _CHUNK, test_len), dtype=np.int64), seq_len)
        for i in range(cfg.n_pairs):
            col = seen[:, i]
            idx = np.searchsorted(col, ood[:, i])
            left = col[(idx - 1) % train_len]
            right = col[idx % train_len]
            near = np.minimum(circular_distance(ood[:, i], left), circular_distance(ood[:, i], right))
            gap[i] = max(gap[i], float(near.max()))
    return gap
