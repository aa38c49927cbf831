"""cos/sin, the rotation and its inverse in ``keras.ops`` (formulas: rrope_core.rotation).

``y1 = a*(x1*cos(phi) - x2*sin(phi))``, ``y2 = a*(x2*cos(phi) + x1*sin(phi))`` (RoFormer eq. 13),
inverse with ``-phi`` and ``1/a``. Computed in float32 (float64 for float64 ``x``, where the
Keras backend has it), returned in ``x``'s dtype; features past ``rotary_dim`` are copied bit for
bit. The rotation is a ``keras.ops.custom_gradient`` on the JAX, PyTorch and TensorFlow backends:
the map is linear with matrix ``a*R(phi)``, so the backward is the transpose ``a*R(-phi)`` applied
to the upstream gradient (one more rotation, never a derivative of the trig).
"""

from __future__ import annotations

import contextlib
import functools

import keras
import numpy as np
from keras import ops

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_call, check_cfg, check_positions_dtype
from rrope_core.rotation import resolve_seq_len

from .convert import DTYPES, as_positions, meta, readable
from .phases import constants, phases

__all__ = ["inv_freq", "cos_sin", "apply_rotary", "inverse_rotary", "checked", "AUTODIFF_BACKENDS"]

#: Keras backends with autodiff, where the rotation carries its custom gradient.
AUTODIFF_BACKENDS = ("jax", "torch", "tensorflow")


def inv_freq(cfg: rr.RopeConfig, seq_len: int | None = None, *, device=None):
    """``rrope_core.inv_freq`` as a float64 tensor (float32 where the backend lacks float64)."""
    check_cfg(cfg)
    seq_len = resolve_seq_len(cfg, seq_len, None)
    dtype = "float64" if "float64" in DTYPES else "float32"
    with keras.device(device) if device is not None else contextlib.nullcontext():
        return ops.convert_to_tensor(rr.inv_freq(cfg, seq_len).astype(dtype))


def _seq_len(cfg: rr.RopeConfig, seq_len, positions):
    """``seq_len``, or for dynamic NTK / LongRoPE ``max(positions) + 1`` (one host read: not when traced)."""
    if not cfg.seq_len_dependent or seq_len is not None:
        return resolve_seq_len(cfg, seq_len, None)
    shape = meta(positions)[0]
    if None not in shape and int(np.prod(shape)) == 0:
        return resolve_seq_len(cfg, None, None)
    if not readable(positions):
        raise bad(
            "seq_len",
            None,
            f"must be given for traced positions with {type(cfg.scaling).__name__} (its frequencies depend on it)",
            RopeInputError,
        )
    return resolve_seq_len(cfg, None, int(ops.convert_to_numpy(ops.max(positions))))


def _compute(dtype_name: str) -> str:
    return "float64" if dtype_name == "float64" else "float32"


def _rotate(x, cos, sin, scale: float, cfg: rr.RopeConfig):
    """``scale * R(phi) x`` on the first ``rotary_dim`` features in cos's dtype; the rest of ``x`` unchanged."""
    rd = cfg.rotary_dim
    c = keras.backend.standardize_dtype(cos.dtype)
    xr, rest = (x, None) if rd == cfg.head_dim else ops.split(x, [rd], axis=-1)
    xr = ops.cast(xr, c)
    if cfg.layout == "half":
        x1, x2 = ops.split(xr, 2, axis=-1)
    else:
        pairs = ops.reshape(xr, tuple(ops.shape(xr)[:-1]) + (rd // 2, 2))
        x1, x2 = (ops.squeeze(t, -1) for t in ops.split(pairs, 2, axis=-1))
    y1 = ops.subtract(ops.multiply(x1, cos), ops.multiply(x2, sin))
    y2 = ops.add(ops.multiply(x2, cos), ops.multiply(x1, sin))
    if scale != 1.0:
        s = ops.convert_to_tensor(np.asarray(scale, dtype=c))
        y1, y2 = ops.multiply(y1, s), ops.multiply(y2, s)
    if cfg.layout == "half":
        rot = ops.concatenate([y1, y2], axis=-1)
    else:
        rot = ops.reshape(ops.stack([y1, y2], axis=-1), ops.shape(xr))
    rot = ops.cast(rot, x.dtype)
    return rot if rest is None else ops.concatenate([rot, rest], axis=-1)


def _rotation(x, cos, sin, scale: float, cfg: rr.RopeConfig):
    """``_rotate`` whose gradient is the transposed rotation (on backends with autodiff)."""
    if keras.backend.backend() not in AUTODIFF_BACKENDS or keras.backend.is_keras_tensor(x):
        return _rotate(x, cos, sin, scale, cfg)

    @ops.custom_gradient
    def rotate(x, cos, sin):
        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream  # torch passes the saved inputs first
            return _rotate(g, cos, ops.negative(sin), scale, cfg), None, None

        return _rotate(x, cos, sin, scale, cfg), grad

    return rotate(x, cos, sin)


def checked(x, positions, cfg: rr.RopeConfig, name: str):
    """The reference's metadata checks, then ``(x tensor, int32 positions)``; nothing is modified."""
    xs, xd, xf, _ = meta(x)
    ps, pd, _, pi = meta(positions)
    check_call(cfg, xs, xd, xf, ps, pd, pi, name)
    if xd not in DTYPES:
        raise bad(
            f"{name}.dtype", xd, f"must be one of {DTYPES} on Keras backend {keras.backend.backend()!r}", RopeInputError
        )
    x = x if ops.is_tensor(x) or keras.backend.is_keras_tensor(x) else ops.convert_to_tensor(np.array(x))
    return x, as_positions(positions)


def _program(x, positions, cfg: rr.RopeConfig, seq_len, inverse: bool, compute: str):
    """Phases and rotation of validated inputs (one traceable function)."""
    k = constants(cfg, seq_len)
    phi = phases(positions, k, compute)
    cos, sin, scale = ops.cos(phi), ops.sin(phi), k.attention
    if inverse:
        sin, scale = ops.negative(sin), 1.0 / scale
    return _rotation(x, cos, sin, scale, cfg)


@functools.lru_cache(maxsize=256)
def _jax_program(cfg: rr.RopeConfig, seq_len, inverse: bool, compute: str):
    """On Keras's JAX backend: ``_program`` as one ``jax.jit`` program per config (eager keras.ops
    dispatch compiles every op for every new shape: ~1 s per call at a new shape, measured)."""
    import jax  # Keras's JAX backend has imported it already

    return jax.jit(lambda x, p: _program(x, p, cfg, seq_len, inverse, compute))


def _run(x, positions, cfg: rr.RopeConfig, seq_len, inverse: bool):
    x, positions = checked(x, positions, cfg, "y" if inverse else "x")
    seq_len = _seq_len(cfg, seq_len, positions)
    compute = _compute(meta(x)[1])
    if keras.backend.backend() == "jax" and not keras.backend.is_keras_tensor(x):
        return _jax_program(cfg, seq_len, inverse, compute)(x, positions)
    return _program(x, positions, cfg, seq_len, inverse, compute)


def apply_rotary(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None):
    """Rotate ``x`` (``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``.

    ``(T,)`` for ``(B,H,T,D)``, ``(T,1)`` for ``(B,T,H,D)``, ``(B,1,T)`` for per-batch offsets.
    Traced positions (jit, tf.function) must be int32; dynamic NTK / LongRoPE then need ``seq_len``.
    """
    return _run(x, positions, cfg, seq_len, inverse=False)


def inverse_rotary(y, positions, cfg: rr.RopeConfig, seq_len: int | None = None):
    """The inverse of ``apply_rotary``: rotate by ``-phi`` and divide by the attention factor."""
    return _run(y, positions, cfg, seq_len, inverse=True)


def cos_sin(cfg: rr.RopeConfig, positions, seq_len: int | None = None):
    """``(cos, sin)`` of the exact phases, float32, shape ``positions.shape + (rotary_dim//2,)``,
    without the attention factor (as ``rrope_core.rotation.cos_sin``)."""
    check_cfg(cfg)
    _, pd, _, pi = meta(positions)
    check_positions_dtype(pd, pi)
    positions = as_positions(positions)
    phi = phases(positions, constants(cfg, _seq_len(cfg, seq_len, positions)), "float32")
    return ops.cos(phi), ops.sin(phi)
