"""``grad_apply_rotary`` through the active Keras backend's own autodiff.

The one place that imports a framework (the one Keras already loaded): ``jax.grad``,
``torch.autograd.grad`` or ``tf.GradientTape``, chosen by ``keras.backend.backend()``. The
rotation's custom gradient (rotation.py) makes the result ``a * R(-phi) w`` = ``a**2 * inverse_rotary(w)``.
"""

from __future__ import annotations

import keras
from keras import ops

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad

from .convert import as_tensor, meta
from .rotation import AUTODIFF_BACKENDS, apply_rotary, checked

__all__ = ["grad_apply_rotary"]


def grad_apply_rotary(x, positions, cfg: rr.RopeConfig, w, seq_len: int | None = None):
    """``d/dx sum(w * apply_rotary(x))`` (``w`` a constant of x's shape), in x's dtype."""
    x, positions = checked(x, positions, cfg, "x")
    w = as_tensor(w)
    if meta(w)[0] != meta(x)[0]:
        raise bad("w.shape", meta(w)[0], f"must equal x.shape={meta(x)[0]}", RopeInputError)
    name = keras.backend.backend()
    c = "float64" if meta(x)[1] == "float64" else "float32"

    def loss(x_):
        return ops.sum(ops.multiply(ops.cast(apply_rotary(x_, positions, cfg, seq_len), c), ops.cast(w, c)))

    if name == "jax":
        import jax

        return jax.grad(loss)(x)
    if name == "torch":
        import torch

        leaf = x.detach().requires_grad_(True)  # a new leaf: x itself is left as it is
        (grad,) = torch.autograd.grad(loss(leaf), leaf)
        return grad
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(x)
        return tape.gradient(value, x)
    raise bad(
        "keras.backend.backend()",
        name,
        f"has no autodiff here; grad_apply_rotary needs one of {AUTODIFF_BACKENDS}",
        RopeInputError,
    )
