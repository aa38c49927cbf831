"""Metadata checks on TensorFlow arguments (the reference's checks, on static shapes) and ``seq_len``.

Only shapes and dtypes are read, never position values (a device sync); the one exception is
``max(positions)`` for a dynamic NTK / LongRoPE call without ``seq_len``, eagerly, as the reference does.
"""

from __future__ import annotations

import tensorflow as tf

from rrope_core.checked import NEGATIVE, check_range, positions_checked
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_call, check_cfg, check_positions_dtype
from rrope_core.rotation import resolve_seq_len

__all__ = ["as_tensor", "check_rotation_call", "check_positions", "effective_seq_len"]

_SEQ_LEN_IN_GRAPH = "must be given for dynamic NTK / LongRoPE configs inside tf.function (frequencies depend on it)"


def as_tensor(a) -> tf.Tensor:
    """``a`` itself if it is a tensor; Python/NumPy values and variables become tensors (nothing is copied in place)."""
    return a if isinstance(a, tf.Tensor) else tf.convert_to_tensor(a)


def _static_shapes(x_shape: tf.TensorShape, pos_shape: tf.TensorShape, name: str) -> tuple[tuple, tuple]:
    """Concrete stand-ins for shapes with unknown (``None``) dimensions, aligned from the right.

    An unknown dimension takes the value of its known partner (or 1 when both are unknown), so the
    reference's broadcast check accepts every shape that could broadcast at run time; TensorFlow's own
    broadcasting then checks the real values. ``head_dim`` (the last axis of ``x``) must be static.
    """
    if x_shape.rank is None or pos_shape.rank is None:
        which = name if x_shape.rank is None else "positions"
        raise bad(f"{which}.shape", "<unknown rank>", "must have a static rank", RopeInputError)
    xs, ps = list(x_shape.as_list()), list(pos_shape.as_list())
    if xs and xs[-1] is None:
        return tuple(xs), tuple(ps)  # check_x_shape rejects it with the reference's message
    lead = xs[:-1]
    for j in range(1, max(len(lead), len(ps)) + 1):
        xd = lead[-j] if j <= len(lead) else 1
        pd = ps[-j] if j <= len(ps) else 1
        if xd is None and pd is None:
            xd = pd = 1
        elif xd is None:
            xd = pd
        elif pd is None:
            pd = xd
        if j <= len(lead):
            lead[-j] = xd
        if j <= len(ps):
            ps[-j] = pd
    return tuple(lead + xs[-1:]), tuple(ps)


def check_rotation_call(cfg, x: tf.Tensor, positions: tf.Tensor, name: str) -> None:
    """``rrope_core.inputs.check_call`` on ``x`` and ``positions`` metadata (static shapes)."""
    check_cfg(cfg)
    x_shape, pos_shape = _static_shapes(x.shape, positions.shape, name)
    check_call(
        cfg,
        x_shape,
        x.dtype.name,
        x.dtype.is_floating,
        pos_shape,
        positions.dtype.name,
        positions.dtype.is_integer,
        name,
    )


def check_positions(cfg, positions: tf.Tensor) -> None:
    """``cfg`` is a RopeConfig and ``positions`` has an integer dtype (what ``cos_sin`` needs)."""
    check_cfg(cfg)
    check_positions_dtype(positions.dtype.name, positions.dtype.is_integer)


def effective_seq_len(cfg, seq_len, positions: tf.Tensor) -> int | None:
    """``rrope_core.rotation.resolve_seq_len``: ``seq_len``, else ``max(positions)+1`` for
    dynamic NTK / LongRoPE (one host read, eager only), else None."""
    if seq_len is not None or not cfg.seq_len_dependent:
        return resolve_seq_len(cfg, seq_len, None)
    if not tf.executing_eagerly():
        raise bad("seq_len", None, _SEQ_LEN_IN_GRAPH, RopeInputError)
    if positions.shape.num_elements() == 0:
        return resolve_seq_len(cfg, None, None)
    return resolve_seq_len(cfg, None, int(tf.reduce_max(positions).numpy()))


def checked_values(positions: tf.Tensor) -> tf.Tensor:
    """Checked positions mode (``rrope_core.checked``): eager, read min/max and raise the reference's
    RopeInputError; inside ``tf.function``, a ``tf.debugging`` assertion the positions depend on."""
    if not positions_checked() or positions.shape.num_elements() == 0:
        return positions
    if tf.executing_eagerly():
        check_range(int(tf.reduce_min(positions).numpy()), int(tf.reduce_max(positions).numpy()))
        return positions
    check = tf.debugging.assert_non_negative(positions, message=f"positions {NEGATIVE}")
    with tf.control_dependencies([check]):
        return tf.identity(positions)
