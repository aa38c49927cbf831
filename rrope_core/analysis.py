"""Analysis of what a model sees out of distribution: the feature gap of Resonance RoPE.

Wang et al. 2024 (arXiv 2403.00071), section 3: for pair ``i`` the feature gap is the largest
distance from a feature angle at an OOD position ``m in [train_len, test_len)`` to the nearest
angle seen in training (``n in [0, train_len)``), measured on the circle. Theorem 1: with
integer wavelengths every pre-critical pair (``lambda~_i <= train_len``) has gap exactly 0.

The gap is computed per pair without visiting every OOD position. By the three-gap theorem
(Sos 1958) the ``L`` seen angles ``n*theta`` cut the circle into arcs of at most three kinds: with
``a``/``b`` the ``n in [1, L)`` whose angle lies just after/before angle 0, the arc after ``n``
ends at ``n + a`` for ``n < L - a``, at ``n - b`` for ``n >= b``, else at ``n + a - b``. Arcs of a
kind are translates of one another, so an OOD point ``m`` in the arc after ``n`` sits at offset
``(m - n)*theta`` in it; the best OOD point of a kind is the ``k = m - n`` whose angle is nearest
the middle of the arc, found block by block in one sorted block of angles. Every OOD position of
the best ``k`` is then measured exactly as the brute force (``_brute_gap``) measures it, so the
result is its value bit for bit; ``_brute_gap`` itself serves ``train_len == 1`` and arcs too
short to order reliably in float64. Memory: O(block + chunk) per pair, whatever ``test_len`` or
the number of pairs; the brute force holds ``8 * train_len`` bytes, checked against
``rrope_core.limits.TABLE_BUDGET`` for every pair before any pair is computed.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import positive_int
from .config import RopeConfig
from .errors import RopeInputError, bad
from .frequencies import integer_wavelengths, scaled_inv_freq
from .inputs import MAX_FLOAT_EXACT
from .limits import FLOAT64_BYTES, TABLE_BUDGET
from .phases import reduce_phase, resonance_phase

__all__ = ["feature_gap", "circular_distance"]

_CHUNK = 1 << 16
_TWO_PI = 2 * np.pi
_MIN_ARC = 1e-12  # shorter arcs than this (radians) cannot be ordered reliably from float64 angles
_TIE = 1e-12  # distances closer than this to the largest may be it after rounding
_MAX_INT64 = 2**63 - 1


def circular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance on the unit circle between angles ``a`` and ``b`` (radians, in ``[0, pi]``)."""
    d = np.mod(np.abs(a - b), 2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def feature_gap(cfg: RopeConfig, train_len: int, test_len: int, seq_len: int | None = None) -> np.ndarray:
    """Per pair, ``max_{m in [L, T)} min_{n in [0, L)} dist(phi_i(m), phi_i(n))``, shape ``(rotary_dim//2,)``.

    Phases are the exact ones of ``rrope_core.phases.phases`` (frequencies at ``seq_len``).
    """
    train_len = positive_int("train_len", train_len, RopeInputError)
    test_len = positive_int("test_len", test_len, RopeInputError)
    if test_len <= train_len:
        raise bad("test_len", test_len, f"must be > train_len={train_len}", RopeInputError)
    if cfg.resonance and test_len > _MAX_INT64:
        raise bad("test_len", test_len, "must be <= 2**63 - 1 (positions [0, test_len) are int64)", RopeInputError)
    if not cfg.resonance and test_len > MAX_FLOAT_EXACT:
        raise bad(
            "test_len",
            test_len,
            "must be <= 2**53 for non-resonance configs (positions [0, test_len) must be exact in float64)",
            RopeInputError,
        )
    if cfg.resonance:
        # Theorem 1: a period <= L means every OOD angle is (bit for bit) one seen in training.
        phis = [None if p <= train_len else _resonance_phi(p) for p in integer_wavelengths(cfg, seq_len)]
    else:
        phis = [_rope_phi(t) for t in scaled_inv_freq(cfg, seq_len)]
    plans = [None if phi is None else _neighbours_of_zero(phi, train_len) for phi in phis]
    _check_brute_force(plans, train_len)
    return np.array(
        [
            0.0 if phi is None else _pair_gap(phi, train_len, test_len, plan)
            for phi, plan in zip(phis, plans, strict=True)
        ]
    )


def _needs_brute_force(plan: tuple[int, int, float, float]) -> bool:
    return min(plan[2], plan[3]) < _MIN_ARC


def _check_brute_force(plans: list, train_len: int) -> None:
    """``RopeInputError`` before any table is built when a pair's brute force would pass ``TABLE_BUDGET``."""
    if train_len * FLOAT64_BYTES <= TABLE_BUDGET:
        return
    brute = [i for i, plan in enumerate(plans) if plan is not None and _needs_brute_force(plan)]
    if brute:
        raise bad(
            "train_len",
            train_len,
            f"must be <= {TABLE_BUDGET // FLOAT64_BYTES} for this config: pair {brute[0]}'s seen angles are closer "
            f"than {_MIN_ARC:g} rad, so its gap is found by brute force over a float64 table of train_len angles, "
            f"and one table may take at most {TABLE_BUDGET} bytes (rrope_core.limits.TABLE_BUDGET, 2 GiB)",
            RopeInputError,
        )


def _rope_phi(theta: float):
    """Angles of one pair as ``rrope_core.phases.phases`` computes them, for int64 positions."""
    return lambda m: reduce_phase(m.astype(np.float64), theta)


def _resonance_phi(period: int):
    return lambda m: resonance_phase(m, period)


def _pair_gap(phi, train_len: int, test_len: int, plan: tuple[int, int, float, float]) -> float:
    """The feature gap of one pair whose angle at positions ``m`` is ``phi(m)``; ``plan`` is
    ``_neighbours_of_zero(phi, train_len)``."""
    L, T = train_len, test_len
    a, b, arc_a, arc_b = plan
    if _needs_brute_force(plan):
        return _brute_gap(phi, L, T)
    # Arc kinds: (step d from an arc's start to its end, starts in [lo, hi), arc length).
    kinds = [(a, 0, L - a, arc_a), (-b, b, L, arc_b), (a - b, L - a, b, arc_a + arc_b)]
    kinds = [kind for kind in kinds if kind[1] < kind[2]]
    block = min(T - L, max(4096, min(math.isqrt(T), 1 << 20)))
    order = np.argsort(phi(np.arange(block, dtype=np.int64)))
    angles = phi(order)
    best: dict[tuple[int, int], float] = {}  # (kind, k) -> distance, for the k nearest an arc's middle
    for kind, (d, lo, hi, arc) in enumerate(kinds):
        # m = start + k with m in [L, T), start in [lo, hi): k in [k1, k2], searched in blocks [s, s + block)
        k1, k2 = L - hi + 1, T - 1 - lo
        for first in range(k1, k2 + 1, block * _CHUNK):
            s = np.arange(first, min(first + block * _CHUNK, k2 + 1), block, dtype=np.int64)
            s = np.minimum(s, k2 - block + 1)
            target = np.mod(arc / 2 - phi(s) + np.pi, _TWO_PI) - np.pi  # phi(s + j) ~ phi(s) + phi(j)
            idx = np.searchsorted(angles, target)
            k = np.unique(np.concatenate([s + order[(idx - 1) % block], s + order[idx % block]]))
            start = np.clip(L - k, lo, hi - 1)
            near = _inside_distances(phi, start + k, start, start + d)
            keep = near >= near.max() - _TIE
            best.update(((kind, int(kk)), float(v)) for kk, v in zip(k[keep], near[keep], strict=True))
    top = max(best.values())
    # Every start of a kind gives a k the same distance up to rounding, and the brute force keeps
    # the largest rounding: measure all the starts of the (near-)best k.
    gap = 0.0
    for (kind, k), value in best.items():
        if value < top - _TIE:
            continue
        d, lo, hi, _ = kinds[kind]
        for first in range(max(lo, L - k), min(hi, T - k), _CHUNK):
            start = np.arange(first, min(first + _CHUNK, hi, T - k), dtype=np.int64)
            gap = max(gap, float(_inside_distances(phi, start + k, start, start + d).max()))
    return gap


def _turn(phi, n: int) -> float:
    """The angle of position ``n`` in ``[0, 2*pi)``."""
    return float(np.mod(phi(np.array([n], dtype=np.int64))[0], _TWO_PI))


def _neighbours_of_zero(phi, L: int) -> tuple[int, int, float, float]:
    """``(a, b, arc_a, arc_b)``: the ``n in [1, L)`` whose angles follow (``a``) and precede (``b``)
    angle 0 on the circle, and their distances to 0 (radians).

    Euclid's algorithm on the two arcs: the next position to land between ``b`` and ``a`` is always
    ``a + b``, on the side of the longer arc, which it shortens by the other one. Arcs below
    ``_MIN_ARC`` end it early (the caller then uses the brute force).
    """
    if L == 1:
        return 0, 0, 0.0, 0.0
    a = b = 1
    arc_a = _turn(phi, 1)
    arc_b = _TWO_PI - arc_a
    while a + b < L and min(arc_a, arc_b) >= _MIN_ARC:
        if arc_a > arc_b:
            a, arc_a = _move(lambda n: _turn(phi, n), a, arc_a, b, arc_b, L)
        else:
            b, arc_b = _move(lambda n: _TWO_PI - _turn(phi, n), b, arc_b, a, arc_a, L)
    return a, b, arc_a, arc_b


def _move(arc_of, n: int, arc: float, step: int, step_arc: float, L: int) -> tuple[int, float]:
    """``n + j*step`` for the largest ``j`` that keeps the arc positive and the position below ``L``."""
    j = min(math.ceil(arc / step_arc) - 1, (L - 1 - n) // step)
    while j > 0:
        new = arc_of(n + j * step)
        if new < arc:
            return n + j * step, new
        j -= 1  # the rounded ratio overshot 0 by one step
    return n, 0.0


def _inside_distances(phi, m: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance from ``phi(m)`` to the nearer end of the arc ``phi(start) -> phi(end)``, as the brute
    force measures it, where ``phi(m)`` lies inside that arc (0 elsewhere)."""
    pm, ps, pe = phi(m), phi(start), phi(end)
    inside = np.mod(pm - ps, _TWO_PI) < np.mod(pe - ps, _TWO_PI)
    return np.where(inside, np.minimum(circular_distance(pm, ps), circular_distance(pm, pe)), 0.0)


def _brute_gap(phi, train_len: int, test_len: int) -> float:
    """Every OOD position against the sorted seen angles (O(test_len) time; one float64 table of
    ``train_len`` angles, filled in chunks, plus O(chunk) memory)."""
    seen = np.empty(train_len)
    for first in range(0, train_len, _CHUNK):
        seen[first : first + _CHUNK] = phi(np.arange(first, min(first + _CHUNK, train_len), dtype=np.int64))
    seen.sort()
    gap = 0.0
    for first in range(train_len, test_len, _CHUNK):
        ood = phi(np.arange(first, min(first + _CHUNK, test_len), dtype=np.int64))
        idx = np.searchsorted(seen, ood)
        left = seen[(idx - 1) % train_len]
        right = seen[idx % train_len]
        near = np.minimum(circular_distance(ood, left), circular_distance(ood, right))
        gap = max(gap, float(near.max()))
    return gap
