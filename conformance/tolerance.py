"""Tolerances of the conformance suite, derived from the dtype (never tuned to make a test pass).

A backend receives ``x`` in dtype ``d`` and computes in ``c = float64 if d is float64 else float32``
("trig in float32 at least"). Against the float64 reference on the *same* input values, one
output feature of pair ``i`` (``s = |x1| + |x2|``, attention factor ``a``) may differ by at most

    a * s * (delta_i + 8 * eps_c + eps_d)  +  eps_d * |y_ref|

where
* ``delta_i`` is the phase error the contract allows (below);
* ``8 * eps_c`` bounds the trig (<= 2 ulp each for cos and sin) and the multiply/add/scale
  roundings in ``c`` (<= 4);
* ``eps_d`` covers rounding the result to ``d`` (<= eps_d/2 * |y|), doubled for the slack of a
  backend that rounds an intermediate to ``d`` (e.g. a fused kernel reading cos/sin in ``d``).

Phase contract (``docs/porting.md``): with integer wavelengths the reduction ``m mod L`` is exact,
so only ``2*pi*r/L`` is rounded in ``c``: ``delta <= 2*pi*eps_c``. Other wavelengths are reduced
in float64 (product ``m*theta`` then remainder by ``2*pi``): ``delta <= 2*pi*eps_c + 2*eps64*|m*theta|``.
A float32 phase ``m*theta`` would be off by ``~eps32*|m*theta|`` (128 rad at m = 2**31) and fails.
Features past ``rotary_dim`` pass through bit-exactly: tolerance 0.
"""

from __future__ import annotations

import numpy as np

import rrope_core as rr

EPS = {
    "float64": float(np.finfo(np.float64).eps),
    "float32": float(np.finfo(np.float32).eps),
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0**-7,
}


def compute_eps(dtype: str) -> float:
    """eps of the dtype a backend computes in for inputs of ``dtype``."""
    return EPS["float64"] if dtype == "float64" else EPS["float32"]


def phase_budget(cfg: rr.RopeConfig, positions: np.ndarray, seq_len: int | None, dtype: str) -> np.ndarray:
    """Allowed phase error, shape ``positions.shape + (n_pairs,)``."""
    ec = compute_eps(dtype)
    m = np.asarray(positions, dtype=np.float64)[..., None]
    budget = np.full(m.shape[:-1] + (cfg.n_pairs,), 2 * np.pi * ec)
    if not cfg.resonance:
        budget = budget + 2 * EPS["float64"] * np.abs(m * rr.inv_freq(cfg, seq_len))
    return budget


def rotation_tolerance(
    cfg: rr.RopeConfig,
    x: np.ndarray,
    y_ref: np.ndarray,
    positions: np.ndarray,
    seq_len: int | None,
    dtype: str,
    scale: float,
) -> np.ndarray:
    """Elementwise bound on ``|backend(x) - y_ref|`` for a rotation scaled by ``scale``."""
    first, second = rr.pair_slices(cfg)
    s = np.abs(x[..., first]) + np.abs(x[..., second])
    delta = phase_budget(cfg, positions, seq_len, dtype)
    ec, ed = compute_eps(dtype), EPS[dtype]
    pair_tol = scale * s * (delta + 8 * ec + ed)
    tol = np.zeros(np.broadcast_shapes(x.shape, y_ref.shape))
    tol[..., first] = pair_tol
    tol[..., second] = pair_tol
    return tol + ed * np.abs(y_ref) * (np.arange(cfg.head_dim) < cfg.rotary_dim)


def pair_sum(tol: np.ndarray, cfg: rr.RopeConfig) -> np.ndarray:
    """``tol1 + tol2`` of each pair, on both features: what a rotation can mix into one feature."""
    first, second = rr.pair_slices(cfg)
    out = tol.copy()
    both = tol[..., first] + tol[..., second]
    out[..., first] = both
    out[..., second] = both
    return out
