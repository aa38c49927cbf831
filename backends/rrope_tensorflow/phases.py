"""Rotary phases on the device, exact like ``rrope_core.phases``.

Resonance configs (integer period ``L``): ``r = m mod L`` in int64 (exact at any position), centred
to ``(-L/2, L/2]``, then ``angle = c(r) * c(2*pi/L)`` in the compute dtype ``c`` (float32, or
float64 for float64 inputs): two casts and one product, each <= eps_c/2 relative, |angle| <= pi,
so the error is <= 1.5*pi*eps_c, inside the contract's ``2*pi*eps_c`` (conformance/tolerance.py).

Other configs: ``m * theta`` in float64 (<= eps64/2 * |m*theta|), ``floormod`` by the float64 ``2*pi``
(fmod is exact; the constant is off by 2.4e-16 per turn: <= 0.18*eps64*|m*theta|), centred to
``[-pi, pi)`` (an exact subtraction, Sterbenz), then cast to ``c`` (<= pi*eps_c/2). Total
<= eps64*|m*theta| + pi*eps_c/2, inside the contract's ``2*pi*eps_c + 2*eps64*|m*theta|``.
A float32 ``m*theta`` would be off by ~eps32*|m*theta| (128 rad at m = 2**31).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import rrope_core as rr

from .frequencies import constants

__all__ = ["phases"]

_TWO_PI = 2.0 * np.pi  # float64, the constant rrope_core reduces by
_PI = np.pi


def phases(cfg: rr.RopeConfig, positions: tf.Tensor, seq_len: int | None, dtype: tf.DType) -> tf.Tensor:
    """Angles of shape ``positions.shape + (rotary_dim//2,)`` in ``dtype`` (float32 or float64)."""
    k = constants(cfg, seq_len)
    m = tf.cast(positions, tf.int64)[..., None]
    if k.resonance:
        periods = tf.constant(k.periods, dtype=tf.int64)
        r = tf.math.floormod(m, periods)
        r = tf.where(r > tf.constant(k.half_periods, dtype=tf.int64), r - periods, r)
        step = tf.constant(k.inv_freq.astype(dtype.as_numpy_dtype))  # 2*pi/L rounded once, from float64
        return tf.cast(r, dtype) * step
    angle = tf.cast(m, tf.float64) * tf.constant(k.inv_freq, dtype=tf.float64)
    angle = tf.math.floormod(angle, tf.constant(_TWO_PI, tf.float64))
    angle = tf.where(angle >= _PI, angle - _TWO_PI, angle)
    return tf.cast(angle, dtype)
