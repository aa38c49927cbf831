"""Moving arrays between NumPy and TensorFlow, and telling which tensors are ours."""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from rrope_core.errors import RopeInputError, bad

__all__ = ["DTYPES", "to_numpy", "from_numpy", "is_array", "device_of", "on_device_of"]

#: Floating dtypes the backend rotates (trig runs in float64 for float64 inputs, float32 otherwise).
DTYPES = ("float64", "float32", "float16", "bfloat16")
_FROM_NUMPY_DTYPES = DTYPES + ("int64", "int32")


def is_array(obj) -> bool:
    """A ``tf.Tensor`` (eager or symbolic) or a ``tf.Variable``."""
    return isinstance(obj, (tf.Tensor, tf.Variable))


def device_of(a) -> str:
    """The tensor's device string (``""`` for a symbolic tensor not yet placed)."""
    return str(a.device)


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of an eager tensor; bfloat16 (no NumPy dtype) comes back as float32, exactly."""
    t = tf.convert_to_tensor(a)
    if t.dtype == tf.bfloat16:
        t = tf.cast(t, tf.float32)  # every bfloat16 value is a float32 value
    return np.array(t.numpy())


def from_numpy(a, dtype: str | None = None, device: str | None = None) -> tf.Tensor:
    """A new tensor holding ``a`` cast to ``dtype`` (a name, e.g. ``"float32"``), on ``device`` (e.g. ``"/CPU:0"``)."""
    if dtype is not None and dtype not in _FROM_NUMPY_DTYPES:
        raise bad("dtype", dtype, f"must be None or one of {_FROM_NUMPY_DTYPES}", RopeInputError)
    arr = np.asarray(a)
    scope = tf.device(device) if device is not None else contextlib.nullcontext()
    with scope:
        t = tf.identity(tf.constant(arr))  # identity places the copy under the device scope
        return t if dtype is None else tf.cast(t, tf.as_dtype(dtype))


def on_device_of(t) -> contextlib.AbstractContextManager:
    """``tf.device(t.device)`` for a placed tensor, so results stay where the input lives; else a no-op."""
    dev = getattr(t, "device", "")
    return tf.device(dev) if dev else contextlib.nullcontext()
