"""cos/sin, the rotation, its inverse and its gradient (the formulas of ``rrope_core.rotation``).

For pair ``(x1, x2)`` (``rr.pair_slices``), phase ``phi`` and scale ``s``::

    y1 = s * (x1*cos(phi) - x2*sin(phi)),   y2 = s * (x2*cos(phi) + x1*sin(phi))   (RoFormer eq. 13)

``apply_rotary``: ``s = a`` (the attention factor); ``inverse_rotary``: ``-phi`` and ``s = 1/a``.
Trig and rotation run in ``c = float64`` for float64 inputs, else float32; features past
``rotary_dim`` pass through bit-exactly; the result has x's dtype. The map is linear in x with
matrix ``s*R(phi)``, so its gradient is the transpose ``s*R(-phi)`` applied to the upstream
gradient: registered with ``tf.custom_gradient`` instead of differentiating the trig.
"""

from __future__ import annotations

import tensorflow as tf

import rrope_core as rr

from .convert import on_device_of
from .frequencies import constants
from .inputs import as_tensor, check_positions, check_rotation_call, checked_values, effective_seq_len
from .phases import phases

__all__ = ["cos_sin", "apply_rotary", "inverse_rotary", "grad_apply_rotary"]


def _compute_dtype(dtype: tf.DType) -> tf.DType:
    return tf.float64 if dtype == tf.float64 else tf.float32


def _rotate(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, scale: float, cfg: rr.RopeConfig) -> tf.Tensor:
    """``s*R(phi) x`` on the first ``rotary_dim`` features, in cos's dtype; the rest of ``x`` unchanged."""
    rd, c = cfg.rotary_dim, cos.dtype
    xr = tf.cast(x[..., :rd], c)
    if cfg.layout == "half":
        x1, x2 = xr[..., : rd // 2], xr[..., rd // 2 :]
    else:
        x1, x2 = xr[..., 0::2], xr[..., 1::2]
    y1 = x1 * cos - x2 * sin
    y2 = x2 * cos + x1 * sin
    if scale != 1.0:
        s = tf.constant(scale, dtype=c)
        y1, y2 = s * y1, s * y2
    if cfg.layout == "half":
        yr = tf.concat([y1, y2], axis=-1)
    else:
        yr = tf.reshape(tf.stack([y1, y2], axis=-1), tf.shape(xr))
    yr = tf.cast(yr, x.dtype)
    if rd == cfg.head_dim:
        return yr
    return tf.concat([yr, x[..., rd:]], axis=-1)


def _rotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, scale: float, cfg: rr.RopeConfig) -> tf.Tensor:
    """``_rotate`` with the transpose ``s*R(-phi)`` as its registered gradient."""

    @tf.custom_gradient
    def rotate(x, cos, sin):
        def grad(dy):
            return _rotate(dy, cos, -sin, scale, cfg), None, None

        return _rotate(x, cos, sin, scale, cfg), grad

    return rotate(x, cos, sin)


def _rotation(x, positions, cfg, seq_len, name: str, inverse: bool) -> tf.Tensor:
    x, positions = as_tensor(x), as_tensor(positions)
    check_rotation_call(cfg, x, positions, name)  # before any work: the reference's errors
    positions = checked_values(positions)
    seq_len = effective_seq_len(cfg, seq_len, positions)
    a = constants(cfg, seq_len).attention_factor
    with on_device_of(x):
        phi = phases(cfg, positions, seq_len, _compute_dtype(x.dtype))
        cos, sin = tf.cos(phi), tf.sin(phi)
        if inverse:
            return _rotary(x, cos, -sin, 1.0 / a, cfg)
        return _rotary(x, cos, sin, a, cfg)


def apply_rotary(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> tf.Tensor:
    """Rotate ``x`` (``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``.

    ``(T,)`` for ``(B,H,T,D)``, ``(T,1)`` for ``(B,T,H,D)``, ``(B,1,T)`` for per-batch offsets.
    Returns a new tensor of x's dtype on x's device.
    """
    return _rotation(x, positions, cfg, seq_len, "x", inverse=False)


def inverse_rotary(y, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> tf.Tensor:
    """The inverse of ``apply_rotary``: rotate by ``-phi`` and divide by the attention factor."""
    return _rotation(y, positions, cfg, seq_len, "y", inverse=True)


def cos_sin(cfg: rr.RopeConfig, positions, seq_len: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """``(cos, sin)`` of the exact phases, float32, shape ``positions.shape + (rotary_dim//2,)``,
    without the attention factor (as ``rrope_core.rotation.cos_sin``)."""
    positions = as_tensor(positions)
    check_positions(cfg, positions)
    positions = checked_values(positions)
    seq_len = effective_seq_len(cfg, seq_len, positions)
    with on_device_of(positions):
        phi = phases(cfg, positions, seq_len, tf.float32)
        return tf.cos(phi), tf.sin(phi)


def grad_apply_rotary(x, positions, cfg: rr.RopeConfig, w, seq_len: int | None = None) -> tf.Tensor:
    """``d/dx sum(w * apply_rotary(x))`` through ``tf.GradientTape``; equals ``a**2 * inverse_rotary(w)``."""
    x = as_tensor(x)
    w = tf.stop_gradient(as_tensor(w))  # w is a constant weight, even when it is x itself
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = apply_rotary(x, positions, cfg, seq_len)
        loss = tf.reduce_sum(tf.cast(w, y.dtype) * y)
    return tape.gradient(loss, x)
